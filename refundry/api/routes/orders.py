"""Orders: ingest a paid order (the shop's back end), read it, preview a refund of it.

Who sees an order: its customer; a merchant with lines in it (its own lines only, no tenders);
agents and admins. Anyone else is told there is no such order (``order.not_found``). The rules
are services/access.py's; the view is services/orders/views.py's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response
from pydantic import AwareDatetime, Field
from sqlalchemy import Engine

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id
from refundry.api.kept import answer_order
from refundry.api.money import money_context
from refundry.api.previews import answer_preview
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import (
    Body,
    OrderIngest,
    OrderView,
    PlanView,
    RefundRequestBody,
    problems,
)
from refundry.services.access import Actor
from refundry.services.orders.fulfilment import update_status
from refundry.services.orders.intake import receive_order
from refundry.services.orders.views import read_order

__all__ = ["router"]

router = APIRouter(prefix="/v1/orders", tags=["orders"], route_class=OneHopRoute)

OrderId = Annotated[Id, Path()]


@router.post(
    "",
    status_code=201,
    response_model=OrderView,
    responses={
        200: {"model": OrderView, "description": "the same order was ingested before"},
        **problems(401, 403, 409, 422),
    },
)
def ingest_order(
    body: OrderIngest, actor: ActorDep, ctx: ContextDep, response: Response
) -> OrderView:
    """Ingest a paid order (admin: the shop's back end). The same order again answers 200 with
    the same summary; the same id with other content is 409 ``order.conflict``."""
    doc: dict[str, Any] = {"order": body.order}
    if body.customer is not None:
        doc["customer"] = body.customer
    result = receive_order(ctx.engine, actor=actor, doc=doc, policy=ctx.desk.policy, now=ctx.now())
    if not result.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/orders/{quote(result.order_id, safe='')}"
    return _order(ctx.engine, result.order_id, actor)


def _order(engine: Engine, order_id: str, actor: Actor) -> OrderView:
    found = read_order(engine, order_id, actor)
    return OrderView.model_validate(
        found, from_attributes=True, context=money_context(found.currency)
    )


@router.get("/{order_id}", response_model=OrderView, responses=problems(401, 404, 422))
def get_order(order_id: OrderId, actor: ActorDep, ctx: ContextDep, request: Request) -> Response:
    """Lines with refunded quantities, tenders with refunded amounts, and the order's cases."""

    def draw() -> tuple[str, str]:
        view = _order(ctx.engine, order_id, actor)
        return view.customer_id, view.model_dump_json(by_alias=True)

    # kept for the next request while the customer's data has not moved (refundry/api/kept.py)
    return answer_order(ctx, request.scope["path"], actor, order_id, draw)


@router.post(
    "/{order_id}/refund-preview",
    response_model=PlanView,
    responses=problems(401, 403, 404, 422),
)
def refund_preview(
    order_id: OrderId, body: RefundRequestBody, actor: ActorDep, ctx: ContextDep
) -> Response:
    """The plan the request would apply now; nothing is written."""
    # most previews are answered in front of the framework, the same way (api/previews.py)
    return answer_preview(ctx, actor=actor, order_id=order_id, body=body)


class StatusBody(Body):
    status: Literal["shipped", "delivered", "completed", "cancelled"]
    at: AwareDatetime = Field(description="when it happened at the shop (RFC 3339)")


@router.post(
    "/{order_id}/status",
    response_model=OrderView,
    responses=problems(401, 403, 404, 409, 422),
)
def update_order_status(
    order_id: OrderId, body: StatusBody, actor: ActorDep, ctx: ContextDep
) -> OrderView:
    """The order was shipped, delivered, completed, or cancelled before shipment (admin: the
    shop's back end). Steps go forward only; the same step with the same time again answers
    the order unchanged."""
    update_status(
        ctx.engine,
        actor=actor,
        order_id=order_id,
        status=body.status,
        at=body.at,
        now=ctx.now(),
    )
    return _order(ctx.engine, order_id, actor)
