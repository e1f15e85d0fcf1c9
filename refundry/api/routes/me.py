"""The customer's own assets and messages: ``/v1/me/*`` (customer tokens only).

Coupons and entitlements, the points balance with its postings, campaign eligibility and the
risk restrictions in force, and the in-app inbox. Lists are newest first with an opaque
``cursor`` (``next_cursor`` of the previous page). Everything is read for the token's subject
only, so another customer's rows are never reachable: they are simply not in the lists, and
``POST /v1/me/inbox/{id}/read`` answers 404 for a message that is not the caller's.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, func, or_, select

from refundry.api.deps import ActorDep, ContextDep, require_roles
from refundry.api.fields import OneLine
from refundry.api.schemas_cases import Empty, problems
from refundry.domain.errors import InvalidInput
from refundry.domain.reader import text_problem
from refundry.notifications import TemplateError, render
from refundry.services.inbox import mark_read
from refundry.services.ledger import account_id, balance
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    campaign_quotas,
    campaigns,
    customers,
    entitlements,
    inbox_messages,
    ledger_postings,
    orders,
    refund_effects,
    refunds,
    risk_restrictions,
)

__all__ = ["Amount", "decode_cursor", "encode_cursor", "router"]

router = APIRouter(prefix="/v1/me", tags=["me"])

ROW_ID_MAX = 2**31 - 1  # the id columns are 32-bit INTEGER on PostgreSQL
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
MessageId = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]
Cursor = Annotated[
    OneLine | None, Query(max_length=200, description="next_cursor of the last page.")
]

# Effects of an applied refund that give a campaign's quota back to the customer.
_RESTORING = ("quota_release", "first_purchase_restored")


class Amount(BaseModel):
    """Money: integer minor units with the ISO 4217 currency."""

    model_config = ConfigDict(extra="forbid")
    amount: int
    currency: str | None


def encode_cursor(*parts: object) -> str:
    raw = json.dumps([str(p) for p in parts], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The parts of a cursor made by ``encode_cursor``; a forged one is ``request.invalid``."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != size
        # The parts go into queries: what no id may hold (NUL: PostgreSQL refuses it) is forged.
        or not all(isinstance(p, str) and text_problem(p, max_length=100) is None for p in parts)
    ):
        raise InvalidInput(
            "cursor is not one this API gave", code="request.invalid", field="cursor"
        )
    return parts


def _int_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    (value,) = decode_cursor(cursor, 1)
    if not value.isdigit() or int(value) > ROW_ID_MAX:
        raise InvalidInput(
            "cursor is not one this API gave", code="request.invalid", field="cursor"
        )
    return int(value)


def _currency(conn: Connection, customer_id: str) -> str | None:
    """The shop's currency as the customer's latest order shows it (entitlements carry none)."""
    return conn.execute(
        select(orders.c.currency)
        .where(orders.c.customer_id == customer_id)
        .order_by(orders.c.ingested_at.desc())
        .limit(1)
    ).scalar_one_or_none()


# -- coupons -------------------------------------------------------------------------------


class Coupon(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    category: str  # coupon | entitlement
    kind: str
    state: str  # available | used | forfeited | replaced
    value: Amount
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
    require_roles(actor, "customer")
    e = entitlements.c
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        currency = _currency(uow.conn, actor.id)
        rows = uow.conn.execute(
            select(entitlements).where(e.customer_id == actor.id).order_by(e.category, e.id)
        ).all()
    return Coupons(
        items=[
            Coupon(
                id=r.id,
                category=r.category,
                kind=r.kind,
                state=r.state,
                value=Amount(amount=int(r.value), currency=currency),
                valid_until=r.valid_until,
                reissued_from=r.reissued_from,
                order_id=r.order_id,
                updated_at=r.updated_at,
            )
            for r in rows
        ]
    )


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
    require_roles(actor, "customer")
    before = _int_cursor(cursor)
    p = ledger_postings.c
    query = select(ledger_postings).where(p.account_id == account_id("points", actor.id))
    if before is not None:
        query = query.where(p.id < before)
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        conn = uow.conn
        rows = conn.execute(query.order_by(p.id.desc()).limit(limit + 1)).all()
        tier = conn.execute(
            select(customers.c.tier).where(customers.c.id == actor.id)
        ).scalar_one_or_none()
        points, growth = balance(conn, "points", actor.id), balance(conn, "growth", actor.id)
    page = rows[:limit]
    return Points(
        balance=points,
        growth=growth,
        tier=tier,
        postings=[
            Posting(
                id=r.id,
                points=int(r.amount),
                memo=r.memo,
                order_id=r.order_id,
                refund_id=r.refund_id,
                at=r.created_at,
            )
            for r in page
        ],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


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


def _restored(conn: Connection, customer_id: str) -> Counter[str]:
    rows = conn.execute(
        select(refund_effects.c.data)
        .select_from(
            refund_effects.join(refunds, refunds.c.id == refund_effects.c.refund_id).join(
                orders, orders.c.id == refunds.c.order_id
            )
        )
        .where(orders.c.customer_id == customer_id, refund_effects.c.type.in_(_RESTORING))
    )
    return Counter(str(json.loads(data).get("campaign_id")) for (data,) in rows)


@router.get("/eligibility", response_model=Eligibility, responses=problems(401, 403))
def my_eligibility(actor: ActorDep, ctx: ContextDep) -> Eligibility:
    """Campaign participations used and restored, and the restrictions in force with why."""
    require_roles(actor, "customer")
    now = ctx.now()
    q, rr = campaign_quotas.c, risk_restrictions.c
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        conn = uow.conn
        quotas = conn.execute(
            select(q.campaign_id, q.used, campaigns.c.kind, campaigns.c.high_value)
            .select_from(campaign_quotas.outerjoin(campaigns, campaigns.c.id == q.campaign_id))
            .where(q.customer_id == actor.id)
            .order_by(q.campaign_id)
        ).all()
        restored = _restored(conn, actor.id)
        active = conn.execute(
            select(risk_restrictions)
            .where(
                and_(
                    rr.customer_id == actor.id,
                    rr.lifted_at.is_(None),
                    rr.since <= now,
                    or_(rr.until.is_(None), rr.until > now),
                )
            )
            .order_by(rr.id)
        ).all()
    kinds = {r.kind for r in active}
    return Eligibility(
        campaigns=[
            CampaignQuota(
                campaign_id=r.campaign_id,
                kind=r.kind,
                high_value=bool(r.high_value),
                used=int(r.used),
                restored=restored.get(r.campaign_id, 0),
            )
            for r in quotas
        ],
        restrictions=[
            Restriction(
                id=r.id, kind=r.kind, rule=r.rule, reason=r.reason, since=r.since, until=r.until
            )
            for r in active
        ],
        restricted_from=["high_value"] if "restrict_high_value" in kinds else [],
        refund_rights_suspended="suspend" in kinds,
    )


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


def _message(row: Any) -> InboxMessage:
    params = json.loads(row.params)
    try:
        shown = render(row.template, params, row.locale)
        title, text = shown.subject, shown.text
    except TemplateError:  # a template retired since: still show the message's facts
        title, text = row.template, None
    return InboxMessage(
        id=row.id,
        template=row.template,
        locale=row.locale,
        title=title,
        text=text,
        params=params,
        order_id=row.order_id,
        refund_id=row.refund_id,
        created_at=row.created_at,
        read_at=row.read_at,
    )


@router.get("/inbox", response_model=Inbox, responses=problems(401, 403, 422))
def my_inbox(actor: ActorDep, ctx: ContextDep, limit: Limit = 20, cursor: Cursor = None) -> Inbox:
    """In-app messages, newest first, rendered in the message's locale."""
    require_roles(actor, "customer")
    before = _int_cursor(cursor)
    m = inbox_messages.c
    query = select(inbox_messages).where(m.customer_id == actor.id)
    if before is not None:
        query = query.where(m.id < before)
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        rows = uow.conn.execute(query.order_by(m.id.desc()).limit(limit + 1)).all()
        unread = uow.conn.execute(
            select(func.count()).where(m.customer_id == actor.id, m.read_at.is_(None))
        ).scalar_one()
    page = rows[:limit]
    return Inbox(
        items=[_message(r) for r in page],
        unread=int(unread),
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


@router.post(
    "/inbox/{message_id}/read", response_model=InboxMessage, responses=problems(401, 403, 404, 422)
)
def read_message(
    message_id: MessageId, actor: ActorDep, ctx: ContextDep, body: Empty | None = None
) -> InboxMessage:
    """Mark one of the caller's messages read (the first reading time is kept). A body, if
    sent, is ``{}``: any field is 422 ``request.unknown_field``, as on every other route."""
    require_roles(actor, "customer")
    row = mark_read(ctx.engine, customer_id=actor.id, message_id=message_id, now=ctx.now())
    return _message(row)
