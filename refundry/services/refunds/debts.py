"""Debts of reversed 极速退款 settled by a later refund of the same order.

An inspection that refuses units of an express refund leaves the money with the customer and
records it as the case's debt (services/refunds/reversal.py). A later refund of the order sees
that money in its history: its plan's ``carry`` is negative by what earlier steps moved beyond
what their units are worth, and it moves that much less. ``settle_debts`` then lowers the order's
case debts by as much, in the refund's transaction, so the agent queue never asks for money the
refund already kept.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select, update

from refundry.services.audit.chain import AuditTrail
from refundry.store.prepared import Prepared
from refundry.store.tables import cases

__all__ = ["settle_debts"]

# Prepared: settle_debts runs inside the apply path's pipelined block (store/prepared.py).
_c = cases.c
_OWING = Prepared(
    select(_c.id, _c.debt)
    .where(_c.order_id == bindparam("b_order_id"), _c.debt > 0)
    .order_by(_c.created_at, _c.id)
)
_LESS_DEBT = Prepared(
    update(cases)
    .where(_c.id == bindparam("b_case_id"))
    .values(debt=_c.debt - bindparam("b_part", type_=_c.debt.type))
)


def settle_debts(
    conn: Connection, *, order_id: str, netted: int, refund_id: str, trail: AuditTrail
) -> int:
    """A later step of the order moved ``netted`` less than its units are worth (its plan's
    negative ``carry``: the money earlier steps moved beyond what their units are worth, which
    is what reversed 极速退款 left with the customer). That much of the order's case debts is
    settled, oldest first, each with its audit entry; returns what was settled."""
    owing = _OWING.rows(conn, {"b_order_id": order_id})
    left = netted
    for case_id, debt in owing:
        if left <= 0:
            break
        part = min(int(debt), left)
        _LESS_DEBT.run(conn, {"b_case_id": case_id, "b_part": part})
        trail.record(
            "case.debt_settled",
            order_id=order_id,
            refund_id=refund_id,
            case_id=case_id,
            settled=part,
            debt_after=int(debt) - part,
        )
        left -= part
    return netted - left
