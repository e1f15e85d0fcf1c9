"""A customer's own orders, newest first: what the order list page shows of each.

Only the caller's orders are read (``access.require(actor, "order.list_own")``: customers
only; the desk reads one order at a time); the titles come from the ingested document, the
amounts from the store's rows, so refunded amounts are current.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, order_tenders, orders

__all__ = ["OrderSummary", "customer_orders"]


@dataclass(frozen=True, slots=True)
class OrderSummary:
    id: str
    status: str
    currency: str
    paid_at: datetime | None
    paid: int  # what the tenders took, minor units
    refunded: int  # what went back to them so far
    units: int  # goods units bought
    titles: tuple[str, ...]  # the lines' titles, in the order's order
    cases: int  # after-sales cases opened on it


def customer_orders(engine: Engine, actor: Actor, *, limit: int = 50) -> tuple[OrderSummary, ...]:
    """The caller's ``limit`` newest orders (by payment time, then id)."""
    access.require(actor, "order.list_own")
    with UnitOfWork(engine, readonly=True) as uow:
        conn = uow.conn
        rows = list(
            conn.execute(
                select(orders)
                .where(orders.c.customer_id == actor.id)
                .order_by(orders.c.paid_at.desc(), orders.c.id.desc())
                .limit(limit)
            )
        )
        ids = [r.id for r in rows]
        money = {
            r.order_id: (int(r.paid or 0), int(r.refunded or 0))
            for r in conn.execute(
                select(
                    order_tenders.c.order_id,
                    func.sum(order_tenders.c.amount).label("paid"),
                    func.sum(order_tenders.c.refunded).label("refunded"),
                )
                .where(order_tenders.c.order_id.in_(ids))
                .group_by(order_tenders.c.order_id)
            )
        }
        case_counts = {
            r.order_id: int(r.n)
            for r in conn.execute(
                select(cases.c.order_id, func.count().label("n"))
                .where(cases.c.order_id.in_(ids), cases.c.customer_id == actor.id)
                .group_by(cases.c.order_id)
            )
        }
    summaries = []
    for r in rows:
        lines = json.loads(r.document).get("lines", [])
        summaries.append(
            OrderSummary(
                id=r.id,
                status=r.status,
                currency=r.currency,
                paid_at=r.paid_at,
                paid=money.get(r.id, (0, 0))[0],
                refunded=money.get(r.id, (0, 0))[1],
                units=r.goods_units,
                titles=tuple(str(ln.get("title") or ln.get("sku", "")) for ln in lines),
                cases=case_counts.get(r.id, 0),
            )
        )
    return tuple(summaries)
