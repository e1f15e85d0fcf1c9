"""An order's audit trail: ``GET /v1/orders/{order_id}/audit``.

Customers see their own orders, merchants the orders holding one of their lines, agents and
admins any order; anything else is ``order.not_found``, so ids cannot be probed. On an order
shared with other merchants, a merchant sees only the entries that name one of its own lines
and none of the others' (order totals and other merchants' lines stay hidden; fail closed: an
entry is hidden if any of its values equals another merchant's line id). The answer
carries the order's entries and whether the whole hash chain verifies now (``verify_chain``
walks every entry, so an edited, deleted or reordered row anywhere shows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, exists, select

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id
from refundry.api.schemas_cases import problems
from refundry.services.audit import verify_chain
from refundry.services.cases import Actor
from refundry.services.errors import NotFound
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, order_lines, orders

__all__ = ["router"]

router = APIRouter(prefix="/v1/orders", tags=["audit"])

OrderId = Annotated[Id, Path()]


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: int
    at: datetime
    actor: str
    action: str
    refund_id: str | None
    data: dict[str, Any]


class OrderAudit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    entries: list[AuditEntry]  # in chain order
    hidden_entries: int  # entries of this order withheld from a merchant (other merchants')
    chain_verified: bool
    chain_problem: str | None  # where the chain breaks, when it does


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included (tender and line ids can be keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _merchant_filter(conn: Connection, order_id: str, merchant_id: str) -> Any:
    """A predicate on entry data for a merchant: None when the order is all its own."""
    own: set[str] = set()
    others: set[str] = set()
    for line_id, owner in conn.execute(
        select(order_lines.c.line_id, order_lines.c.merchant_id).where(
            order_lines.c.order_id == order_id
        )
    ):
        (own if owner == merchant_id else others).add(str(line_id))
    if not others:
        return None
    own_only = own - others

    def visible(data: Any) -> bool:
        seen = set(_strings(data))
        return not (seen & others) and bool(seen & own_only)

    return visible


def _may_see(conn: Connection, order_id: str, actor: Actor) -> bool:
    if actor.role in ("agent", "admin"):
        return conn.execute(select(orders.c.id).where(orders.c.id == order_id)).first() is not None
    if actor.role == "customer":
        owner = conn.execute(
            select(orders.c.customer_id).where(orders.c.id == order_id)
        ).scalar_one_or_none()
        return owner == actor.id
    if actor.role == "merchant":
        mine = exists().where(
            order_lines.c.order_id == order_id, order_lines.c.merchant_id == actor.id
        )
        return bool(conn.execute(select(mine)).scalar())
    return False


@router.get("/{order_id}/audit", response_model=OrderAudit, responses=problems(401, 404, 422))
def order_audit(order_id: OrderId, actor: ActorDep, ctx: ContextDep) -> OrderAudit:
    """The order's audit entries and whether the tamper-evident chain verifies."""
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        conn = uow.conn
        if not _may_see(conn, order_id, actor):
            raise NotFound(f"no order {order_id!r}", code="order.not_found")
        rows = conn.execute(
            select(audit_log).where(audit_log.c.order_id == order_id).order_by(audit_log.c.seq)
        ).all()
        visible = _merchant_filter(conn, order_id, actor.id) if actor.role == "merchant" else None
        report = verify_chain(conn)
    entries = [
        AuditEntry(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            action=r.action,
            refund_id=r.refund_id,
            data=json.loads(r.data),
        )
        for r in rows
    ]
    shown = [e for e in entries if visible(e.data)] if visible is not None else entries
    return OrderAudit(
        order_id=order_id,
        entries=shown,
        hidden_entries=len(entries) - len(shown),
        chain_verified=report.ok,
        chain_problem=None if report.ok else f"entry {report.first_bad_seq}: {report.problem}",
    )
