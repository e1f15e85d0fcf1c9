"""The customer's own assets and messages: ``/v1/me/*`` (customer tokens only).

Coupons and entitlements, the points balance with its postings, campaign eligibility and the
risk restrictions in force, and the in-app inbox. Lists are newest first with an opaque
``cursor`` (``next_cursor`` of the previous page). Everything is read for the token's subject
only, so another customer's rows are never reachable: they are simply not in the lists, and
``POST /v1/me/inbox/{id}/read`` answers 404 for a message that is not the caller's. The reads
are services/customers/views.py's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import OneLine
from refundry.api.money import Money
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import Empty, problems
from refundry.services.customers import views as customer_views
from refundry.services.reads import ROW_ID_MAX

__all__ = ["Cursor", "Limit", "router"]

router = APIRouter(prefix="/v1/me", tags=["me"], route_class=OneHopRoute)

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
MessageId = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]
Cursor = Annotated[
    OneLine | None, Query(max_length=200, description="next_cursor of the last page.")
]


# -- coupons -------------------------------------------------------------------------------


class Coupon(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    category: str  # coupon | entitlement
    kind: str
    state: str  # available | used | forfeited | replaced
    value: Money
    valid_until: datetime | None
    reissued_from: str | None  # the expired coupon this one replaces
    order_id: str | None  # the order using it, while used
    updated_at: datetime


class Coupons(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Coupon]


@router.get("/coupons", response_model=Coupons, responses=problems(401, 403))
def my_coupons(actor: ActorDep, ctx: ContextDep) -> Coupons:
    """The caller's coupons and entitlements, with their state and any reissue."""
    found = customer_views.coupons(ctx.engine, actor)
    return Coupons.model_validate(found, from_attributes=True)


# -- points ----------------------------------------------------------------------------------


class Posting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    points: int  # positive: to the customer; negative: taken back
    memo: str
    order_id: str | None
    refund_id: str | None
    at: datetime


class Points(BaseModel):
    model_config = ConfigDict(extra="forbid")
    balance: int  # whole points
    growth: int  # growth value, which decides the tier
    tier: str | None
    postings: list[Posting]  # newest first
    next_cursor: str | None


@router.get("/points", response_model=Points, responses=problems(401, 403, 422))
def my_points(actor: ActorDep, ctx: ContextDep, limit: Limit = 20, cursor: Cursor = None) -> Points:
    """Points balance, growth value and tier, and the latest point postings with their memos."""
    found = customer_views.points(ctx.engine, actor, limit=limit, cursor=cursor)
    return Points.model_validate(found, from_attributes=True)


# -- eligibility ---------------------------------------------------------------------------


class CampaignQuota(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: str
    kind: str | None
    high_value: bool
    used: int  # participations counted now
    restored: int  # participations given back by refunds


class Restriction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    kind: str  # restrict_high_value | suspend
    rule: str
    reason: str
    since: datetime
    until: datetime | None  # None: until an agent lifts it


class Eligibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaigns: list[CampaignQuota]
    restrictions: list[Restriction]
    restricted_from: list[str]  # campaign classes closed to the customer now: "high_value"
    refund_rights_suspended: bool


@router.get("/eligibility", response_model=Eligibility, responses=problems(401, 403))
def my_eligibility(actor: ActorDep, ctx: ContextDep) -> Eligibility:
    """Campaign participations used and restored, and the restrictions in force with why."""
    found = customer_views.eligibility(ctx.engine, actor, now=ctx.now())
    return Eligibility.model_validate(found, from_attributes=True)


# -- inbox -----------------------------------------------------------------------------------


class InboxMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    template: str
    locale: str
    title: str
    text: str | None  # None: the stored parameters no longer render (title is the template)
    params: dict[str, Any]
    order_id: str | None
    refund_id: str | None
    created_at: datetime
    read_at: datetime | None


class Inbox(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[InboxMessage]  # newest first
    unread: int
    next_cursor: str | None


@router.get("/inbox", response_model=Inbox, responses=problems(401, 403, 422))
def my_inbox(actor: ActorDep, ctx: ContextDep, limit: Limit = 20, cursor: Cursor = None) -> Inbox:
    """In-app messages, newest first, rendered in the message's locale."""
    found = customer_views.inbox(ctx.engine, actor, limit=limit, cursor=cursor)
    return Inbox.model_validate(found, from_attributes=True)


@router.post(
    "/inbox/{message_id}/read", response_model=InboxMessage, responses=problems(401, 403, 404, 422)
)
def read_message(
    message_id: MessageId, actor: ActorDep, ctx: ContextDep, body: Empty | None = None
) -> InboxMessage:
    """Mark one of the caller's messages read (the first reading time is kept). A body, if
    sent, is ``{}``: any field is 422 ``request.unknown_field``, as on every other route."""
    message = customer_views.read_message(ctx.engine, actor, message_id=message_id, now=ctx.now())
    return InboxMessage.model_validate(message, from_attributes=True)
