"""An order as the actor may see it, and the refund a request would make of it now.

The view comes from the store's rows, not the ingested document, so refunded quantities and
amounts are current: lines in the document's order with their apportioned paid amounts,
tenders with what went back to each, and the order's cases. Who sees what is
services/access.py's (a merchant: its own lines, no tenders, no total of a shared case).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from refundry.domain.plan_doc import PlanDoc
from refundry.domain.policy import Policy
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases.record import case_from_row
from refundry.services.refunds.apply import preview_refund
from refundry.services.refunds.reversal import ReversalView, reversals_of_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    cases,
    order_lines,
    order_tenders,
    orders,
    refund_reversals,
    refund_tenders,
    refunds,
)

__all__ = [
    "OrderCase",
    "OrderLine",
    "OrderTender",
    "OrderView",
    "order_view",
    "preview_order_refund",
    "read_order",
]


@dataclass(frozen=True, slots=True)
class OrderLine:
    line_id: str
    sku: str
    title: str
    merchant_id: str
    quantity: int
    unit_price: int
    paid: int  # apportioned paid amount of the whole line, minor units
    gift_of: str | None
    refunded_qty: int  # units refunded, not counting refunds that failed
    refund_failed_qty: int  # units of refunds whose money the gateway refused (agents act on them)


@dataclass(frozen=True, slots=True)
class OrderTender:
    tender_id: str
    kind: str
    method: str | None
    amount: int
    points: int
    refunded: int  # not counting a refund the gateway refused
    refund_failed: int  # refused by the gateway: not back with the customer


@dataclass(frozen=True, slots=True)
class OrderCase:
    id: str
    state: str
    kind: str
    reason: str
    amount: int | None  # None for a merchant when the case has other merchants' lines
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OrderView:
    id: str
    customer_id: str
    currency: str
    status: str
    paid_at: datetime | None
    shipped_at: datetime | None  # the shop's status updates (services/orders/fulfilment.py)
    delivered_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    ingested_at: datetime
    lines: tuple[OrderLine, ...]
    tenders: tuple[OrderTender, ...]  # empty for a merchant: the payment is the customer's
    cases: tuple[OrderCase, ...]
    # 极速退款 whose inspection refused units (those units are refundable again); empty for a
    # merchant, like the tenders: the debt is the customer's
    reversals: tuple[ReversalView, ...] = ()


def order_view(conn: Connection, order_id: str, actor: Actor) -> OrderView:
    """The order as ``actor`` may see it; ``order.not_found`` when it may not."""
    row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
    if row is None or (actor.role == "customer" and row.customer_id != actor.id):
        raise access.order_not_found(order_id)  # before reading lines a stranger may not see
    document: dict[str, Any] = json.loads(row.document)
    position = {ln["id"]: i for i, ln in enumerate(document.get("lines", []))}
    titles = {ln["id"]: str(ln.get("title", "")) for ln in document.get("lines", [])}
    line_rows = sorted(
        conn.execute(select(order_lines).where(order_lines.c.order_id == order_id)),
        key=lambda r: position.get(r.line_id, len(position)),
    )
    merchants = {r.merchant_id for r in line_rows}
    if not access.may_see_order(actor, customer_id=row.customer_id, merchant_ids=merchants):
        raise access.order_not_found(order_id)
    if actor.role == "merchant":
        line_rows = [r for r in line_rows if r.merchant_id == actor.id]
    failed_units, failed_money = _failed(conn, order_id)
    tenders: tuple[OrderTender, ...] = ()
    reversals: tuple[ReversalView, ...] = ()
    if access.sees_tenders(actor):
        reversals = reversals_of_order(conn, order_id)
        tenders = tuple(
            OrderTender(
                tender_id=t.tender_id,
                kind=t.kind,
                method=t.method,
                amount=t.amount,
                points=t.points,
                refunded=t.refunded - failed_money.get(t.tender_id, 0),
                refund_failed=failed_money.get(t.tender_id, 0),
            )
            for t in conn.execute(
                select(order_tenders)
                .where(order_tenders.c.order_id == order_id)
                .order_by(order_tenders.c.tender_id)
            )
        )
    case_rows = conn.execute(
        select(cases).where(cases.c.order_id == order_id).order_by(cases.c.created_at, cases.c.id)
    )
    return OrderView(
        id=row.id,
        customer_id=row.customer_id,
        currency=row.currency,
        status=row.status,
        paid_at=row.paid_at,
        shipped_at=row.shipped_at,
        delivered_at=row.delivered_at,
        completed_at=row.completed_at,
        cancelled_at=row.cancelled_at,
        ingested_at=row.ingested_at,
        lines=tuple(
            OrderLine(
                line_id=r.line_id,
                sku=r.sku,
                title=titles.get(r.line_id, ""),
                merchant_id=r.merchant_id,
                quantity=r.quantity,
                unit_price=r.unit_price,
                paid=r.paid,
                gift_of=r.gift_of,
                refunded_qty=r.refunded_qty - failed_units.get(r.line_id, 0),
                refund_failed_qty=failed_units.get(r.line_id, 0),
            )
            for r in line_rows
        ),
        tenders=tenders,
        cases=tuple(
            OrderCase(
                id=c.id,
                state=c.state,
                kind=c.kind,
                reason=c.reason,
                amount=None if access.sees_only_own_lines(c, actor) else c.amount,
                created_at=c.created_at,
            )
            for c in map(case_from_row, case_rows)
            if access.may_see_case(c, actor)
        ),
        reversals=reversals,
    )


def _failed(conn: Connection, order_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """(units per line of the order's refunds that failed, money per tender the gateway
    refused): what the view does not count as refunded."""
    units: dict[str, int] = {}
    # A reversed 极速退款 counts only its accepted units (its reversal's history document).
    rv = refund_reversals.c
    for (plan,) in conn.execute(
        select(func.coalesce(rv.history, refunds.c.plan))
        .select_from(refunds.outerjoin(refund_reversals, rv.refund_id == refunds.c.id))
        .where(refunds.c.order_id == order_id, refunds.c.status == "refund_failed")
    ):
        for unit in json.loads(plan)["request"]["lines"]:
            units[unit["line_id"]] = units.get(unit["line_id"], 0) + int(unit["quantity"])
    money: dict[str, int] = {}
    t = refund_tenders.c
    for tender_id, amount in conn.execute(
        select(t.tender_id, t.amount).where(t.order_id == order_id, t.status == "failed")
    ):
        money[tender_id] = money.get(tender_id, 0) + int(amount)
    return units, money


def read_order(engine: Engine, order_id: str, actor: Actor) -> OrderView:
    """``order_view`` in a read-only transaction of its own."""
    with UnitOfWork(engine, readonly=True) as uow:
        return order_view(uow.conn, order_id, actor)


def preview_order_refund(
    engine: Engine,
    *,
    actor: Actor,
    order_id: str,
    request: dict[str, Any],
    policy: Policy,
    now: datetime,
) -> PlanDoc:
    """The plan ``request`` would apply now (docs/plan-json.md, "The plan"); nothing is written.
    A customer previews its own orders only."""
    access.require(actor, "order.preview_refund")
    if actor.role == "customer":
        with UnitOfWork(engine, readonly=True) as uow:
            access.visible_order(uow.conn, order_id, actor)
    return preview_refund(engine, order_id=order_id, request=request, policy=policy, now=now)
