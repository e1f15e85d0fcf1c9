"""Orders: ingest a paid order (the shop's back end), read it, preview a refund of it.

Who sees an order: its customer; a merchant with lines in it (its own lines only, no tenders);
agents and admins. Anyone else is told there is no such order (``order.not_found``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from refundry.api.deps import ActorDep, ApiContext, ContextDep, require_roles
from refundry.api.fields import Id
from refundry.api.schemas_cases import (
    OrderCaseView,
    OrderIngest,
    OrderLineView,
    OrderTenderView,
    OrderView,
    PlanView,
    RefundRequestBody,
    problems,
)
from refundry.services.apply import preview_refund
from refundry.services.cases import Actor, may_see
from refundry.services.errors import NotFound
from refundry.services.ingest import IngestResult, ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, order_lines, order_tenders, orders

__all__ = ["order_view", "router"]

router = APIRouter(prefix="/v1/orders", tags=["orders"])

OrderId = Annotated[Id, Path()]


def _not_found(order_id: str) -> NotFound:
    return NotFound(f"no order {order_id!r}", code="order.not_found")


def order_view(conn: Connection, order_id: str, actor: Actor) -> OrderView:
    """The order as ``actor`` may see it; ``order.not_found`` when it may not."""
    row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
    if row is None or (actor.role == "customer" and row.customer_id != actor.id):
        raise _not_found(order_id)
    document: dict[str, Any] = json.loads(row.document)
    position = {ln["id"]: i for i, ln in enumerate(document.get("lines", []))}
    titles = {ln["id"]: str(ln.get("title", "")) for ln in document.get("lines", [])}
    line_rows = sorted(
        conn.execute(select(order_lines).where(order_lines.c.order_id == order_id)),
        key=lambda r: position.get(r.line_id, len(position)),
    )
    if actor.role == "merchant":
        line_rows = [r for r in line_rows if r.merchant_id == actor.id]
        if not line_rows:
            raise _not_found(order_id)
    elif actor.role not in ("customer", "agent", "admin"):
        raise _not_found(order_id)
    tenders: list[OrderTenderView] = []
    if actor.role != "merchant":
        tenders = [
            OrderTenderView(
                tender_id=t.tender_id,
                kind=t.kind,
                method=t.method,
                amount=t.amount,
                points=t.points,
                refunded=t.refunded,
            )
            for t in conn.execute(
                select(order_tenders)
                .where(order_tenders.c.order_id == order_id)
                .order_by(order_tenders.c.tender_id)
            )
        ]
    case_rows = conn.execute(
        select(cases).where(cases.c.order_id == order_id).order_by(cases.c.created_at, cases.c.id)
    )
    return OrderView(
        id=row.id,
        customer_id=row.customer_id,
        currency=row.currency,
        status=row.status,
        paid_at=row.paid_at,
        ingested_at=row.ingested_at,
        lines=[
            OrderLineView(
                line_id=r.line_id,
                sku=r.sku,
                title=titles.get(r.line_id, ""),
                merchant_id=r.merchant_id,
                quantity=r.quantity,
                unit_price=r.unit_price,
                paid=r.paid,
                gift_of=r.gift_of,
                refunded_qty=r.refunded_qty,
            )
            for r in line_rows
        ],
        tenders=tenders,
        cases=[
            OrderCaseView(
                id=c.id,
                state=c.state,
                kind=c.kind,
                reason=c.reason,
                amount=(
                    None
                    if actor.role == "merchant" and json.loads(c.merchant_ids) != [actor.id]
                    else c.amount
                ),
                created_at=c.created_at,
            )
            for c in case_rows
            if may_see(c, actor)
        ],
    )


@router.post(
    "",
    status_code=201,
    response_model=OrderView,
    responses={
        200: {"model": OrderView, "description": "the same order was ingested before"},
        **problems(401, 403, 409, 422),
    },
)
def ingest(body: OrderIngest, actor: ActorDep, ctx: ContextDep, response: Response) -> OrderView:
    """Ingest a paid order (admin: the shop's back end). The same order again answers 200 with
    the same summary; the same id with other content is 409 ``order.conflict``."""
    require_roles(actor, "admin")
    doc: dict[str, Any] = {"order": body.order}
    if body.customer is not None:
        doc["customer"] = body.customer
    try:
        result = _ingest(ctx, doc, actor)
    except IntegrityError:
        # A concurrent request ingested it first: ingesting again answers as for a repeat.
        result = _ingest(ctx, doc, actor)
    if not result.created:
        response.status_code = 200
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        return order_view(uow.conn, result.order_id, actor)


def _ingest(ctx: ApiContext, doc: dict[str, Any], actor: Actor) -> IngestResult:
    with UnitOfWork(ctx.engine) as uow:
        result = ingest_order(uow.conn, doc, policy=ctx.desk.policy, now=ctx.now(), actor=actor.tag)
        uow.commit()
    return result


@router.get("/{order_id}", response_model=OrderView, responses=problems(401, 404, 422))
def get_order(order_id: OrderId, actor: ActorDep, ctx: ContextDep) -> OrderView:
    """Lines with refunded quantities, tenders with refunded amounts, and the order's cases."""
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        return order_view(uow.conn, order_id, actor)


@router.post(
    "/{order_id}/refund-preview",
    response_model=PlanView,
    responses=problems(401, 403, 404, 422),
)
def refund_preview(
    order_id: OrderId, body: RefundRequestBody, actor: ActorDep, ctx: ContextDep
) -> PlanView:
    """The plan the request would apply now; nothing is written."""
    require_roles(actor, "customer", "agent", "admin")
    if actor.role == "customer":
        with UnitOfWork(ctx.engine, readonly=True) as uow:
            owner = uow.conn.execute(
                select(orders.c.customer_id).where(orders.c.id == order_id)
            ).scalar()
        if owner != actor.id:
            raise _not_found(order_id)
    plan = preview_refund(
        ctx.engine,
        order_id=order_id,
        request=body.request_for(order_id),
        policy=ctx.desk.policy,
        now=ctx.now(),
    )
    return PlanView.model_validate(plan)
