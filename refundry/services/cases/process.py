"""The after-sales case: opening it, moving it, and what every move writes.

Every move goes through ``move``: it checks the transition table (refundry/domain/case.py),
updates the case under a version check, appends the timeline, the audit entry, the
notification and the domain event — all in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from refundry.domain.case import FINAL_STATES, CaseState, transition
from refundry.domain.json_text import instant
from refundry.services.access import Actor, may_see_case
from refundry.services.access import case_actions_for as allowed_for
from refundry.services.access import require_case_actor as require_actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.record import Case, read_case
from refundry.services.errors import Conflict, NotFound, Unprocessable
from refundry.services.outbox.messages import enqueue, notify_customer
from refundry.store.tables import case_events, case_units, cases, order_lines

# Actor and the case's access rules live in services/access.py; Actor, allowed_for and
# require_actor stay importable from here for the callers that know them as the case service's.
__all__ = [
    "Actor",
    "Case",
    "allowed_for",
    "change_case",
    "check_units_free",
    "current_case",
    "hold_units",
    "load_case",
    "move",
    "opened_event",
    "release_units",
    "require_actor",
]


def load_case(conn: Connection, case_id: str, actor: Actor, *, lock: bool = False) -> Case:
    """The case if ``actor`` may see it. Another customer's or merchant's case is reported as
    not found, so ids cannot be probed."""
    row = read_case(conn, cases.c.id == case_id, lock=lock)
    if row is None or not may_see_case(row, actor):
        raise NotFound(f"no case {case_id!r}", code="case.not_found")
    return row


def move(
    conn: Connection,
    row: Case,
    action: str,
    *,
    actor: Actor,
    at: datetime,
    trail: AuditTrail,
    data: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    notify: str | None = None,
    params: dict[str, Any] | None = None,
) -> Case:
    """Apply one transition to the case; returns the updated row."""
    before = CaseState(row.state)
    after = transition(before, action)
    changes = {"state": after.value, "state_since": at, **(values or {})}
    change_case(conn, row, at=at, values=changes)
    detail = data or {}
    conn.execute(
        insert(case_events).values(
            case_id=row.id,
            customer_id=row.customer_id,
            at=at,
            actor=actor.tag,
            action=action,
            from_state=before.value,
            to_state=after.value,
            data=json.dumps(detail, ensure_ascii=False, sort_keys=True),
        )
    )
    entry = {
        "case_id": row.id,
        "state_before": before.value,
        "state_after": after.value,
        **{k: v for k, v in detail.items() if k != "refund_id"},
    }
    trail.record(
        f"case.{action}",
        order_id=row.order_id,
        refund_id=detail.get("refund_id", changes.get("refund_id", row.refund_id)),
        **entry,
    )
    if notify:
        notify_customer(
            conn,
            customer_id=row.customer_id,
            at=at,
            template=notify,
            key=f"notify:{row.id}:{row.version + 1}:{notify}",
            params={"case_id": row.id, **(params or {})},
            order_id=row.order_id,
            case_id=row.id,
            refund_id=changes.get("refund_id", row.refund_id),
        )
    _case_event(conn, row, action, before, after, at, actor=actor)
    if after in FINAL_STATES:
        release_units(conn, row)
    return current_case(conn, row.id)


def change_case(conn: Connection, row: Case, *, at: datetime, values: dict[str, Any]) -> None:
    """Write ``values`` to the case ``row`` was read as, under its version check
    (``case.concurrent`` when it changed meanwhile)."""
    done = conn.execute(
        update(cases)
        .where(cases.c.id == row.id, cases.c.version == row.version)
        .values(**values, updated_at=at, version=row.version + 1)
    )
    if done.rowcount != 1:
        raise Conflict(f"case {row.id} changed meanwhile; reload it", code="case.concurrent")


def current_case(conn: Connection, case_id: str, *, lock: bool = False) -> Case:
    """The case as this transaction sees it now (after a write to it); ``lock``: for update."""
    row = read_case(conn, cases.c.id == case_id, lock=lock)
    if row is None:
        raise NotFound(f"no case {case_id!r}", code="case.not_found")
    return row


def _case_event(
    conn: Connection,
    row: Case,
    action: str,
    before: CaseState,
    after: CaseState,
    at: datetime,
    *,
    actor: Actor,
) -> None:
    """The domain event of one move (outbox topic ``event``), keyed by the case's version: who
    moved it, since when it was in the state it left, when it was opened (the /metrics
    counters' durations come from these)."""
    enqueue(
        conn,
        topic="event",
        key=f"event:case:{row.id}:{row.version + 1}",
        at=at,
        payload={
            "type": f"case.{after.value}",
            "case_id": row.id,
            "order_id": row.order_id,
            "customer_id": row.customer_id,
            "action": action,
            "actor": actor.tag,
            "from": before.value,
            "to": after.value,
            "since": instant(row.state_since),
            "opened_at": instant(row.created_at),
            "version": row.version + 1,  # the shop keeps the highest: events may come unordered
        },
    )


def opened_event(
    conn: Connection, *, case_id: str, order_id: str, customer_id: str, actor: Actor, at: datetime
) -> None:
    """The domain event of a case just opened (``case.requested``: from no state)."""
    enqueue(
        conn,
        topic="event",
        key=f"event:case:{case_id}:1",
        at=at,
        payload={
            "type": f"case.{CaseState.REQUESTED.value}",
            "case_id": case_id,
            "order_id": order_id,
            "customer_id": customer_id,
            "action": "open",
            "actor": actor.tag,
            "from": None,
            "to": CaseState.REQUESTED.value,
            "version": 1,
        },
    )


def check_units_free(conn: Connection, order_id: str, lines: Sequence[dict[str, Any]]) -> None:
    """``case.units_unavailable`` when a line asked has fewer units free — not refunded, not
    held by another open case — than asked. ``open_case`` asks before computing the plan, so
    units refunded already get this answer (docs/case-process.md) rather than the plan's
    ``refund.units_exhausted``; a line the order lacks, or a quantity that is not a positive
    integer, is left to the plan's own refusal."""
    for item in lines:
        quantity = item["quantity"]
        if type(quantity) is int and quantity > 0:
            found = _free_units(conn, order_id, item["line_id"])
            if found is not None:
                _refuse_short(item, free=found[0])


def hold_units(
    conn: Connection, order_id: str, lines: Sequence[dict[str, Any]], *, customer_id: str
) -> None:
    """Reserve units for an open case; refuses units already refunded or held by another."""
    for item in lines:
        found = _free_units(conn, order_id, item["line_id"])
        if found is None:
            raise Unprocessable(
                f"order {order_id} has no line {item['line_id']!r}", code="refund.unknown_line"
            )
        free, held_row = found
        _refuse_short(item, free=free)
        where = (case_units.c.order_id == order_id) & (case_units.c.line_id == item["line_id"])
        if held_row is None:
            conn.execute(
                insert(case_units).values(
                    order_id=order_id,
                    line_id=item["line_id"],
                    customer_id=customer_id,
                    held=item["quantity"],
                )
            )
        else:
            conn.execute(
                update(case_units).where(where).values(held=case_units.c.held + item["quantity"])
            )


def _free_units(conn: Connection, order_id: str, line_id: str) -> tuple[int, Any] | None:
    """(units neither refunded nor held by an open case, the line's case_units row or None);
    None when the order has no such line."""
    line = conn.execute(
        select(order_lines.c.quantity, order_lines.c.refunded_qty).where(
            order_lines.c.order_id == order_id, order_lines.c.line_id == line_id
        )
    ).first()
    if line is None:
        return None
    where = (case_units.c.order_id == order_id) & (case_units.c.line_id == line_id)
    held_row = conn.execute(select(case_units.c.held).where(where)).first()
    held = int(held_row.held) if held_row else 0
    return int(line.quantity) - int(line.refunded_qty) - held, held_row


def _refuse_short(item: dict[str, Any], *, free: int) -> None:
    if item["quantity"] > free:
        raise Conflict(
            f"line {item['line_id']!r} has {free} unit(s) not refunded and not in another "
            f"open case; {item['quantity']} asked",
            code="case.units_unavailable",
        )


def release_units(conn: Connection, row: Case) -> None:
    """Give back the units a case held (when it ends, or when its refund took them)."""
    if not row.units_held:
        return
    for item in json.loads(row.lines):
        where = (case_units.c.order_id == row.order_id) & (case_units.c.line_id == item["line_id"])
        conn.execute(
            update(case_units)
            .where(where, case_units.c.held >= item["quantity"])
            .values(held=case_units.c.held - item["quantity"])
        )
    conn.execute(update(cases).where(cases.c.id == row.id).values(units_held=False))


def new_case_id() -> str:
    return "cs_" + uuid.uuid4().hex[:20]
