"""The case as the case services hold it: a typed, immutable record of one row of ``cases``.

Every case service reads a case through ``read_case`` (or ``load_case``, which adds the
caller's access check) and passes this record on; ``move`` returns the record as it is after
the move. The JSON columns stay their stored text (``lines``, ``merchant_ids``, ``review`` …):
most moves never read them, and the properties below parse the ones that are read often.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, select

from refundry.store.tables import cases

__all__ = ["Case", "case_from_row", "read_case"]


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    order_id: str
    customer_id: str
    kind: str  # refund_only | return_and_refund
    reason: str
    return_method: str
    state: str  # a CaseState's value (refundry/domain/case.py)
    state_since: datetime  # timers measure from here
    lines: str  # JSON [{line_id, quantity}] asked
    accepted: str | None  # JSON [{line_id, quantity}] after a partial inspection
    merchant_ids: str  # JSON list: the merchants whose lines are asked
    description: str
    evidence: str  # JSON list of file references
    amount: int  # the plan's total when opened (minor units)
    review: str | None  # JSON: decision, rule, reason, by
    risk: str | None  # JSON: the risk decision with its reasons
    express: bool  # 极速退款: money before the goods came back
    refund_id: str | None  # the applied refund
    rma: str | None
    return_address: str | None
    shipment: str | None  # JSON: carrier, label / pickup, payer, cost
    tracking_number: str | None
    inspection: str | None  # JSON: result, accepted quantities, reason
    debt: int  # express refund whose goods failed inspection (minor units)
    units_held: bool  # its units are held in case_units now
    rating: int | None
    feedback: str | None
    assignee: str | None  # the actor tag of the agent holding the case (claim / assign)
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def asked(self) -> list[dict[str, Any]]:
        """The units the case stands for now: the accepted ones after a partial inspection."""
        parsed: list[dict[str, Any]] = json.loads(self.accepted or self.lines)
        return parsed

    @property
    def merchants(self) -> list[str]:
        parsed: list[str] = json.loads(self.merchant_ids)
        return parsed


_FIELDS = tuple(f.name for f in fields(Case))


def case_from_row(row: Any) -> Case:
    """A row of ``select(cases)`` (extra columns, such as a joined currency, are left out)."""
    m = row._mapping
    return Case(*[m[name] for name in _FIELDS])


def read_case(
    conn: Connection,
    where: ColumnElement[bool],
    *,
    lock: bool = False,
    skip_locked: bool = False,
) -> Case | None:
    """The case matching ``where`` (e.g. ``cases.c.id == case_id``), None if there is none.
    ``lock``: ``SELECT … FOR UPDATE`` (``skip_locked``: a case another transaction holds counts
    as none) — SQLite ignores both, its write transaction already holds the database."""
    query = select(cases).where(where)
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=skip_locked)
    row = conn.execute(query).first()
    return None if row is None else case_from_row(row)
