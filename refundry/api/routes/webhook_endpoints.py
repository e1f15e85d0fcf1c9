"""The shop's webhook endpoints (admin: the shop's back end), their delivery log and replays.

Outbound webhooks to the shop (docs/webhooks.md); the gateway's and carrier's webhooks to
refundry are routes/webhooks.py. The secret is in the 201 answer of a registration and the
answer of a rotation, nowhere else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import AnyUrl, AwareDatetime, BaseModel, Field

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import FreeText, Id
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import Body, problems
from refundry.services.access import require
from refundry.services.shop_webhooks import endpoints, log
from refundry.services.shop_webhooks.catalogue import EVENT_TYPES

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["webhooks to the shop"], route_class=OneHopRoute)

EndpointId = Annotated[Id, Path(description="we_…")]
EventType = Annotated[str, Field(min_length=1, max_length=80)]


class EndpointCreate(Body):
    url: AnyUrl = Field(description="https:// (http:// in dev mode only)")
    event_types: list[EventType] = Field(
        min_length=1, max_length=200, description='event types it takes, or ["*"] for all'
    )
    description: Annotated[FreeText, Field(max_length=200)] = ""


class EndpointView(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class KeyedEndpointView(EndpointView):
    secret: str = Field(description="whsec_…: shown in this answer only")


class EndpointList(BaseModel):
    items: list[EndpointView]


class AttemptView(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = Field(description="null: nothing answered")
    latency_ms: int
    error: str | None
    next_attempt_at: datetime | None


class DeliveryView(BaseModel):
    id: int
    event_id: str
    event_type: str
    occurred_at: datetime
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    attempt_log: list[AttemptView]


class DeliveryList(BaseModel):
    items: list[DeliveryView]
    next_cursor: str | None


class ReplayBody(Body):
    event_id: Annotated[Id, Field(description="one event (msg_…)")] | None = None
    since: AwareDatetime | None = Field(default=None, description="every event from (included)")
    until: AwareDatetime | None = Field(default=None, description="… to (excluded)")


class Replayed(BaseModel):
    queued: int


class EventTypeView(BaseModel):
    type: str
    description: str


class EventTypeList(BaseModel):
    items: list[EventTypeView]


def _view(found: endpoints.Endpoint) -> EndpointView:
    return EndpointView.model_validate(found, from_attributes=True)


def _keyed(found: endpoints.Keyed) -> KeyedEndpointView:
    shown = EndpointView.model_validate(found.endpoint, from_attributes=True)
    return KeyedEndpointView(**shown.model_dump(), secret=found.secret)


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=KeyedEndpointView,
    responses=problems(401, 403, 422),
)
def register_webhook_endpoint(
    body: EndpointCreate, actor: ActorDep, ctx: ContextDep, response: Response
) -> KeyedEndpointView:
    """Register an endpoint (admin); the answer holds its secret, shown this once."""
    keyed = endpoints.register_endpoint(
        ctx.engine,
        actor=actor,
        url=str(body.url),
        event_types=body.event_types,
        description=body.description,
        now=ctx.now(),
        dev=ctx.settings.dev,
    )
    response.headers["Location"] = f"/v1/webhook-endpoints/{keyed.endpoint.id}"
    return _keyed(keyed)


@router.get("/webhook-endpoints", response_model=EndpointList, responses=problems(401, 403))
def list_webhook_endpoints(actor: ActorDep, ctx: ContextDep) -> EndpointList:
    """Every endpoint (admin), oldest first, without secrets."""
    return EndpointList(items=[_view(e) for e in endpoints.list_endpoints(ctx.engine, actor=actor)])


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointView,
    responses=problems(401, 403, 404, 422),
)
def get_webhook_endpoint(endpoint_id: EndpointId, actor: ActorDep, ctx: ContextDep) -> EndpointView:
    return _view(endpoints.read_endpoint(ctx.engine, actor=actor, endpoint_id=endpoint_id))


def _switch(endpoint_id: str, actor: ActorDep, ctx: ContextDep, *, enabled: bool) -> EndpointView:
    done = endpoints.set_enabled(
        ctx.engine, actor=actor, endpoint_id=endpoint_id, enabled=enabled, now=ctx.now()
    )
    return _view(done)


_ONE = problems(401, 403, 404, 422)


@router.post(
    "/webhook-endpoints/{endpoint_id}/disable", response_model=EndpointView, responses=_ONE
)
def disable_webhook_endpoint(
    endpoint_id: EndpointId, actor: ActorDep, ctx: ContextDep
) -> EndpointView:
    """Stop sending (admin); deliveries wait for the endpoint to be enabled."""
    return _switch(endpoint_id, actor, ctx, enabled=False)


@router.post("/webhook-endpoints/{endpoint_id}/enable", response_model=EndpointView, responses=_ONE)
def enable_webhook_endpoint(
    endpoint_id: EndpointId, actor: ActorDep, ctx: ContextDep
) -> EndpointView:
    """Send again (admin): the failure count restarts, waiting deliveries are due now."""
    return _switch(endpoint_id, actor, ctx, enabled=True)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=KeyedEndpointView,
    responses=problems(401, 403, 404, 422),
)
def rotate_webhook_secret(
    endpoint_id: EndpointId, actor: ActorDep, ctx: ContextDep
) -> KeyedEndpointView:
    """A new secret, shown in this answer only; the old one also signs for
    ``webhook_secret_overlap_hours``."""
    keyed = endpoints.rotate_secret(
        ctx.engine,
        actor=actor,
        endpoint_id=endpoint_id,
        now=ctx.now(),
        overlap=timedelta(hours=ctx.settings.webhook_secret_overlap_hours),
    )
    return _keyed(keyed)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404, 422),
)
def delete_webhook_endpoint(endpoint_id: EndpointId, actor: ActorDep, ctx: ContextDep) -> Response:
    """Delete the endpoint (admin): nothing more is sent to it."""
    endpoints.delete_endpoint(ctx.engine, actor=actor, endpoint_id=endpoint_id, now=ctx.now())
    return Response(status_code=204)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryList,
    responses=problems(401, 403, 404, 422),
)
def list_webhook_deliveries(
    endpoint_id: EndpointId,
    actor: ActorDep,
    ctx: ContextDep,
    status: Annotated[Literal["pending", "succeeded", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeliveryList:
    """The delivery log (admin), newest first: each delivery with every attempt."""
    found, more = log.delivery_log(
        ctx.engine,
        actor=actor,
        endpoint_id=endpoint_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return DeliveryList(
        items=[DeliveryView.model_validate(d, from_attributes=True) for d in found],
        next_cursor=more,
    )


@router.post(
    "/webhook-endpoints/{endpoint_id}/replay",
    status_code=202,
    response_model=Replayed,
    responses=problems(401, 403, 404, 422),
)
def replay_webhook_events(
    endpoint_id: EndpointId, body: ReplayBody, actor: ActorDep, ctx: ContextDep
) -> Replayed:
    """Send one event, or every event of ``[since, until)`` the endpoint takes, again (admin),
    with the same ``webhook-id``."""
    queued = log.replay(
        ctx.engine,
        actor=actor,
        endpoint_id=endpoint_id,
        now=ctx.now(),
        event_id=body.event_id,
        since=body.since,
        until=body.until,
    )
    return Replayed(queued=queued)


@router.get("/webhook-event-types", response_model=EventTypeList, responses=problems(401, 403))
def list_webhook_event_types(actor: ActorDep) -> EventTypeList:
    """Every event type an endpoint can take (admin)."""
    require(actor, "webhook.manage")
    return EventTypeList(
        items=[EventTypeView(type=t, description=d) for t, d in EVENT_TYPES.items()]
    )
