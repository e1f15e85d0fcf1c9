"""What a bulk refund asks of one order.

SPEC §4: an order may have several cases, never refunding any unit twice, and a unit is asked
for by at most one open case at a time (``case_units``). A bulk refund therefore takes only the
units of the selected lines that no refund took and **no open case holds**: the units an open
case holds stay with that case, which refunds them (or not) through its own process; the job
records how many it left to cases. When every selected unit is held, the order is skipped with
``bulk.units_held_by_case``; when none is left at all, ``bulk.nothing_to_refund``.

Bulk refunds are ``refund_only`` (nothing is sent back: a cancelled campaign, a recall).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select

from refundry.services.bulk.selection import Selector
from refundry.services.errors import Unprocessable
from refundry.store.prepared import Later, Prepared
from refundry.store.tables import case_units, order_lines

__all__ = ["Asked", "read_lines", "units_to_ask"]

_l, _u = order_lines.c, case_units.c
_LINES = Prepared(
    select(_l.line_id, _l.sku, _l.merchant_id, _l.quantity, _l.refunded_qty, _u.held)
    .select_from(
        order_lines.outerjoin(case_units, (_u.order_id == _l.order_id) & (_u.line_id == _l.line_id))
    )
    .where(_l.order_id == bindparam("order_id"))
    .order_by(_l.line_id)
)


@dataclass(frozen=True, slots=True)
class Asked:
    request: dict[str, Any]  # the refund request (docs/plan-json.md)
    held_by_case: int  # selected units an open case holds, left to it


def read_lines(conn: Connection, order_id: str) -> Later:
    """The order's lines and the units open cases hold (read after the order's lock), for
    ``units_to_ask``: on PostgreSQL inside ``pipelined``, sent without waiting."""
    return _LINES.later(conn, {"order_id": order_id})


def units_to_ask(
    conn: Connection,
    *,
    order_id: str,
    selector: Selector,
    reason: str,
    lines: Later | None = None,
) -> Asked:
    """The request for every free unit of the selected lines (read after the order's lock,
    here or by ``read_lines``); ``bulk.units_held_by_case`` / ``bulk.nothing_to_refund`` when
    there is none."""
    asked: list[dict[str, Any]] = []
    held_total = 0
    if lines is None:
        lines = read_lines(conn, order_id)
    for row in lines.rows():
        if selector.sku is not None and row.sku != selector.sku:
            continue
        if selector.merchant is not None and row.merchant_id != selector.merchant:
            continue
        held = int(row.held or 0)
        free = int(row.quantity) - int(row.refunded_qty) - held
        held_total += min(held, int(row.quantity) - int(row.refunded_qty))
        if free > 0:
            asked.append({"line_id": row.line_id, "quantity": free})
    if not asked:
        if held_total:
            raise Unprocessable(
                f"every selected unit of order {order_id} is held by an open case",
                code="bulk.units_held_by_case",
            )
        raise Unprocessable(
            f"order {order_id} has no selected unit left to refund",
            code="bulk.nothing_to_refund",
        )
    request = {"order_id": order_id, "reason": reason, "kind": "refund_only", "lines": asked}
    return Asked(request=request, held_by_case=held_total)
