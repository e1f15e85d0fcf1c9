"""Webhooks from the payment gateway and the carrier: ``POST /v1/webhooks/{gateway,logistics}``.

No bearer token: the ``Refundry-Signature`` header (``t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">``, keyed by the sender's own secret, ``gateway_webhook_secret`` or
``carrier_webhook_secret``: one sender cannot sign for the other) authenticates it. A missing,
wrong or stale signature (outside ``settings.webhook_tolerance_seconds``) is 401 with
``gateway.webhook_signature`` / ``logistics.webhook_signature`` and nothing is read or written.
A signed body that does not parse is 400 (``*.webhook_invalid``).

Events arrive at least once: a repeated event id answers 200 ``{"outcome": "duplicate"}`` and
changes nothing. A tracking event for a shipment whose booking is not recorded yet answers
409 ``logistics.unknown_shipment`` so the carrier sends it again later.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from refundry.adapters.errors import WebhookRejected
from refundry.adapters.gateway import parse_webhook
from refundry.adapters.logistics import parse_tracking_webhook
from refundry.adapters.webhook_signing import SIGNATURE_HEADER, verify_webhook
from refundry.api.auth import Unauthorized
from refundry.api.deps import ApiContext, ContextDep
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.services.cases.shipments import handle_tracking_event
from refundry.services.errors import Conflict
from refundry.services.refunds.gateway_events import handle_gateway_event

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=OneHopRoute)


async def raw_body(request: Request) -> bytes:
    """The bytes as sent: the signature covers them, not a re-serialised JSON."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


class WebhookOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: str  # applied | duplicate | ignored (no such refund, or already final)


_PROBLEM = problems(401)[401]["content"]
_DOC: dict[int | str, dict[str, Any]] = {
    **problems(),  # the request limits, checked before the signature
    400: {"description": "signed, but the body is not a valid event", "content": _PROBLEM},
    401: {"description": "unsigned, wrongly signed or stale: nothing changed", "content": _PROBLEM},
}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "t=<unix seconds>,v1=<hex HMAC-SHA256>",
        }
    ],
}


def _verify(ctx: ApiContext, request: Request, body: bytes, code: str, sender: str) -> None:
    settings = ctx.settings
    try:
        verify_webhook(
            ctx.runtime.webhook_secret(sender),
            request.headers.get(SIGNATURE_HEADER),
            body,
            now=ctx.now(),
            tolerance=timedelta(seconds=settings.webhook_tolerance_seconds),
        )
    except WebhookRejected as exc:
        raise Unauthorized(exc.message, code=code) from None


@router.post("/gateway", response_model=WebhookOutcome, responses=_DOC, openapi_extra=_BODY)
def gateway_webhook(request: Request, body: RawBody, ctx: ContextDep) -> WebhookOutcome:
    """A refund's final word from the payment gateway."""
    _verify(ctx, request, body, "gateway.webhook_signature", "gateway")
    event = parse_webhook(body)
    return WebhookOutcome(outcome=handle_gateway_event(ctx.engine, event, now=ctx.now()))


@router.post(
    "/logistics",
    response_model=WebhookOutcome,
    responses={
        **_DOC,
        409: {"description": "shipment not known yet: send it again later", "content": _PROBLEM},
    },
    openapi_extra=_BODY,
)
def logistics_webhook(request: Request, body: RawBody, ctx: ContextDep) -> WebhookOutcome:
    """A scan of a return parcel from the carrier."""
    _verify(ctx, request, body, "logistics.webhook_signature", "carrier")
    event = parse_tracking_webhook(body)
    outcome = handle_tracking_event(
        ctx.engine,
        event_id=event.event_id,
        tracking_number=event.tracking_number,
        status=event.status,
        occurred_at=event.occurred_at,
        now=ctx.now(),
        data={"location": event.location},
    )
    if outcome == "unknown_shipment":
        raise Conflict(
            f"no shipment with tracking number {event.tracking_number} yet",
            code="logistics.unknown_shipment",
        )
    return WebhookOutcome(outcome=outcome)
