"""A customer's history, for the desk's case page: orders, cases, refunds and refund rights.

What an agent weighs before deciding a case: the customer's newest orders with the cases
opened on each (their state is their outcome: refunded, rejected, completed …) and what was
refunded on each; the refunds applied for all the customer's orders (how many, and their total
per currency); and every restriction the risk rules or an agent put on the customer's refund
rights (suspensions, high-value restrictions), in force or lifted, with who lifted it and why.

The desk only (services/access.py, area ``customer.history``): a customer reads its own orders
on the order list (services/orders/lists.py), never this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.customers.risk import in_force
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, orders, refunds, risk_restrictions

__all__ = [
    "CustomerHistory",
    "HistoryCase",
    "HistoryOrder",
    "RefundTotal",
    "Restriction",
    "customer_history",
]


@dataclass(frozen=True, slots=True)
class HistoryCase:
    id: str
    state: str  # its outcome once final: refunded, completed, rejected, cancelled, closed …
    kind: str
    reason: str
    amount: int  # the plan's total when the case was opened, minor units
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryOrder:
    id: str
    status: str
    currency: str
    paid_at: datetime | None
    refunds: int  # refunds applied for the order
    refunded: int  # their total, minor units
    cases: tuple[HistoryCase, ...]  # newest first


@dataclass(frozen=True, slots=True)
class RefundTotal:
    currency: str
    refunds: int  # refunds applied for the customer's orders in this currency
    total: int  # minor units


@dataclass(frozen=True, slots=True)
class Restriction:
    kind: str  # suspend | restrict_high_value
    rule: str  # the risk rule, or ``agent`` for a suspension decided by hand
    reason: str
    since: datetime
    until: datetime | None  # None: until an agent lifts it
    in_force: bool
    lifted_at: datetime | None
    lifted_by: str | None  # the actor tag of the agent who lifted it
    lift_reason: str | None


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    customer_id: str
    orders: tuple[HistoryOrder, ...]  # the newest ``limit``, by payment time
    more_orders: bool  # the customer has older orders than these
    totals: tuple[RefundTotal, ...]  # over all the customer's orders, by currency
    restrictions: tuple[Restriction, ...]  # newest first
    suspended: bool  # a suspension is in force now: opening a case is refused


def customer_history(
    engine: Engine, actor: Actor, customer_id: str, *, now: datetime, limit: int = 20
) -> CustomerHistory:
    """The history of ``customer_id`` as of ``now``: its ``limit`` newest orders."""
    access.require(actor, "customer.history")
    with UnitOfWork(engine, readonly=True) as uow:
        conn = uow.conn
        rows = list(
            conn.execute(
                select(orders.c.id, orders.c.status, orders.c.currency, orders.c.paid_at)
                .where(orders.c.customer_id == customer_id)
                .order_by(orders.c.paid_at.desc(), orders.c.id.desc())
                .limit(limit + 1)
            )
        )
        page = rows[:limit]
        ids = [r.id for r in page]
        per_order = _refunds_per_order(conn, ids)
        found = _cases_per_order(conn, customer_id, ids)
        history_orders = tuple(
            HistoryOrder(
                id=r.id,
                status=r.status,
                currency=r.currency,
                paid_at=r.paid_at,
                refunds=per_order.get(r.id, (0, 0))[0],
                refunded=per_order.get(r.id, (0, 0))[1],
                cases=tuple(found.get(r.id, ())),
            )
            for r in page
        )
        restrictions = _restrictions(conn, customer_id, now)
        return CustomerHistory(
            customer_id=customer_id,
            orders=history_orders,
            more_orders=len(rows) > limit,
            totals=_totals(conn, customer_id),
            restrictions=restrictions,
            suspended=any(r.in_force and r.kind == "suspend" for r in restrictions),
        )


def _refunds_per_order(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    return {
        r.order_id: (int(r.n), int(r.total or 0))
        for r in conn.execute(
            select(
                refunds.c.order_id,
                func.count().label("n"),
                func.sum(refunds.c.total).label("total"),
            )
            .where(refunds.c.order_id.in_(ids))
            .group_by(refunds.c.order_id)
        )
    }


def _cases_per_order(
    conn: Connection, customer_id: str, ids: Sequence[str]
) -> dict[str, list[HistoryCase]]:
    found: dict[str, list[HistoryCase]] = {}
    for r in conn.execute(
        select(cases)
        .where(cases.c.customer_id == customer_id, cases.c.order_id.in_(ids))
        .order_by(cases.c.created_at.desc(), cases.c.id.desc())
    ):
        found.setdefault(r.order_id, []).append(
            HistoryCase(
                id=r.id,
                state=r.state,
                kind=r.kind,
                reason=r.reason,
                amount=int(r.amount),
                created_at=r.created_at,
            )
        )
    return found


def _totals(conn: Connection, customer_id: str) -> tuple[RefundTotal, ...]:
    return tuple(
        RefundTotal(currency=r.currency, refunds=int(r.n), total=int(r.total or 0))
        for r in conn.execute(
            select(
                orders.c.currency,
                func.count().label("n"),
                func.sum(refunds.c.total).label("total"),
            )
            .join(orders, orders.c.id == refunds.c.order_id)
            .where(orders.c.customer_id == customer_id)
            .group_by(orders.c.currency)
            .order_by(orders.c.currency)
        )
    )


def _restrictions(conn: Connection, customer_id: str, now: datetime) -> tuple[Restriction, ...]:
    rr = risk_restrictions.c
    active = set(conn.execute(select(rr.id).where(in_force(customer_id, now))).scalars())
    rows: Sequence[Any] = list(
        conn.execute(
            select(risk_restrictions)
            .where(rr.customer_id == customer_id)
            .order_by(rr.since.desc(), rr.id.desc())
        )
    )
    return tuple(
        Restriction(
            kind=r.kind,
            rule=r.rule,
            reason=r.reason,
            since=r.since,
            until=r.until,
            in_force=r.id in active,
            lifted_at=r.lifted_at,
            lifted_by=r.lifted_by,
            lift_reason=r.lift_reason,
        )
        for r in rows
    )
