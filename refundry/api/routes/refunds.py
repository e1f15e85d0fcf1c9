"""Refunds as a resource: apply one for an order straight from a preview (the shop's back end,
agents), read one, list them. The read model and who sees what are
services/refunds/resource.py's and services/access.py's; the apply is services/refunds/apply.py's
exactly-once path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, Field

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id, OneLine
from refundry.api.money import Money, money_context
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import RefundRequestBody, ReversalView, problems
from refundry.services.refunds import resource

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["refunds"], route_class=OneHopRoute)

RefundId = Annotated[Id, Path()]
OrderId = Annotated[Id, Path()]


class RefundTenderView(BaseModel):
    tender_id: str
    kind: str
    amount: Money
    points: int
    status: str  # pending | accepted | succeeded | failed | to_wallet
    gateway_txn_id: str | None
    gateway_refund_id: str | None
    attempt: int
    failure_code: str | None
    failure_message: str | None


class RefundView(BaseModel):
    id: str
    order_id: str
    customer_id: str
    case_id: str | None  # the case that asked for it, if any
    seq: int  # 1 for the order's first refund, 2 next…
    status: Literal["pending", "succeeded", "failed"]
    reason: str
    amount: Money | None  # null for a merchant when the refund has other merchants' lines
    plan_hash: str
    failure_code: str | None
    failure_message: str | None
    tenders: list[RefundTenderView]  # empty for a merchant: the payment is the customer's
    effects: list[dict[str, Any]]  # every effect of the applied plan (docs/plan-json.md)
    actor: str
    created_at: datetime
    updated_at: datetime
    reversal: ReversalView | None  # an inspection that refused units of this 极速退款


class RefundList(BaseModel):
    items: list[RefundView]
    next_cursor: str | None


class ApplyBody(RefundRequestBody):
    expected_plan_hash: Annotated[OneLine, Field(min_length=1, max_length=80)] = Field(
        description="the plan_hash of the preview this applies (refund-preview)"
    )


def _view(found: resource.RefundView) -> RefundView:
    currency = found.amount.currency if found.amount is not None else None
    return RefundView.model_validate(found, from_attributes=True, context=money_context(currency))


@router.post(
    "/orders/{order_id}/refunds",
    status_code=201,
    response_model=RefundView,
    responses={
        200: {"model": RefundView, "description": "applied before with this Idempotency-Key"},
        **problems(401, 403, 404, 409, 422),
    },
)
def apply_refund(
    order_id: OrderId,
    body: ApplyBody,
    actor: ActorDep,
    ctx: ContextDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description="required here")
    ] = None,
) -> RefundView:
    """Apply a refund of the order as previewed (agents, admins). 409 ``plan.stale`` answers
    with the plan as it would be now; the same key answers the refund applied the first time."""
    found, replayed = resource.apply_order_refund(
        ctx.engine,
        actor=actor,
        order_id=order_id,
        request=body.request_for(order_id),
        expected_plan_hash=body.expected_plan_hash,
        idempotency_key=idempotency_key or "",
        policy=ctx.desk.policy,
        now=ctx.now(),
    )
    if replayed:
        response.status_code = 200
    response.headers["Location"] = f"/v1/refunds/{found.id}"
    return _view(found)


@router.get("/refunds/{refund_id}", response_model=RefundView, responses=problems(401, 404, 422))
def get_refund(refund_id: RefundId, actor: ActorDep, ctx: ContextDep) -> RefundView:
    """The refund with each tender's gateway references and every applied effect."""
    return _view(resource.read_refund(ctx.engine, refund_id, actor))


@router.get("/refunds", response_model=RefundList, responses=problems(401, 422))
def list_refunds(
    actor: ActorDep,
    ctx: ContextDep,
    order_id: Annotated[Id | None, Query()] = None,
    customer_id: Annotated[Id | None, Query()] = None,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    cursor: Annotated[OneLine | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RefundList:
    """Newest first (created_at, then id). A customer sees its own refunds, a merchant the
    refunds of its lines (no tenders, its own lines' effects; no amount when other merchants'
    lines are in it), agents and admins all. ``next_cursor`` is null on the last page."""
    page = resource.list_refunds(
        ctx.engine,
        actor,
        where=resource.RefundFilter(order_id=order_id, status=status, customer_id=customer_id),
        cursor=cursor,
        limit=limit,
    )
    return RefundList(items=[_view(r) for r in page.items], next_cursor=page.next_cursor)
