"""The customer's own assets and messages: coupons and entitlements, points with their
postings, campaign eligibility with the restrictions in force, and the in-app inbox.

Everything is read for the actor itself (a customer; services/access.py, area
``customer.assets``), so another customer's rows are never reachable: they are simply not in
the lists, and marking another's message read is ``inbox.message_not_found``. Lists are newest
first with an opaque cursor (services/reads.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from refundry.notifications import TemplateError, render
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.customers.inbox import mark_read
from refundry.services.reads import Amount, decode_id_cursor, encode_cursor
from refundry.services.refunds.ledger import account_id, balance
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

__all__ = [
    "CampaignQuota",
    "Coupon",
    "Coupons",
    "Eligibility",
    "Inbox",
    "InboxMessage",
    "Points",
    "Posting",
    "Restriction",
    "coupons",
    "eligibility",
    "inbox",
    "points",
    "read_message",
]

# Effects of an applied refund that give a campaign's quota back to the customer.
_RESTORING = ("quota_release", "first_purchase_restored")


def _currency(conn: Connection, customer_id: str) -> str | None:
    """The shop's currency as the customer's latest order shows it (entitlements carry none)."""
    return conn.execute(
        select(orders.c.currency)
        .where(orders.c.customer_id == customer_id)
        .order_by(orders.c.ingested_at.desc())
        .limit(1)
    ).scalar_one_or_none()


# -- coupons ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coupon:
    id: str
    category: str  # coupon | entitlement
    kind: str
    state: str  # available | used | forfeited | replaced
    value: Amount
    valid_until: datetime | None
    reissued_from: str | None  # the expired coupon this one replaces
    order_id: str | None  # the order using it, while used
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Coupons:
    items: tuple[Coupon, ...]


def coupons(engine: Engine, actor: Actor) -> Coupons:
    """The actor's coupons and entitlements, with their state and any reissue."""
    access.require(actor, "customer.assets")
    e = entitlements.c
    with UnitOfWork(engine, readonly=True) as uow:
        currency = _currency(uow.conn, actor.id)
        rows = uow.conn.execute(
            select(entitlements).where(e.customer_id == actor.id).order_by(e.category, e.id)
        ).all()
    return Coupons(
        items=tuple(
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
        )
    )


# -- points ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posting:
    id: int
    points: int  # positive: to the customer; negative: taken back
    memo: str
    order_id: str | None
    refund_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Points:
    balance: int  # whole points
    growth: int  # growth value, which decides the tier
    tier: str | None
    postings: tuple[Posting, ...]  # newest first
    next_cursor: str | None


def points(engine: Engine, actor: Actor, *, limit: int = 20, cursor: str | None = None) -> Points:
    """Points balance, growth value and tier, and the latest point postings with their memos."""
    access.require(actor, "customer.assets")
    before = decode_id_cursor(cursor)
    p = ledger_postings.c
    query = select(ledger_postings).where(p.account_id == account_id("points", actor.id))
    if before is not None:
        query = query.where(p.id < before)
    with UnitOfWork(engine, readonly=True) as uow:
        conn = uow.conn
        rows = conn.execute(query.order_by(p.id.desc()).limit(limit + 1)).all()
        tier = conn.execute(
            select(customers.c.tier).where(customers.c.id == actor.id)
        ).scalar_one_or_none()
        held, growth = balance(conn, "points", actor.id), balance(conn, "growth", actor.id)
    page = rows[:limit]
    return Points(
        balance=held,
        growth=growth,
        tier=tier,
        postings=tuple(
            Posting(
                id=r.id,
                points=int(r.amount),
                memo=r.memo,
                order_id=r.order_id,
                refund_id=r.refund_id,
                at=r.created_at,
            )
            for r in page
        ),
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


# -- eligibility -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignQuota:
    campaign_id: str
    kind: str | None
    high_value: bool
    used: int  # participations counted now
    restored: int  # participations given back by refunds


@dataclass(frozen=True, slots=True)
class Restriction:
    id: int
    kind: str  # restrict_high_value | suspend
    rule: str
    reason: str
    since: datetime
    until: datetime | None  # None: until an agent lifts it


@dataclass(frozen=True, slots=True)
class Eligibility:
    campaigns: tuple[CampaignQuota, ...]
    restrictions: tuple[Restriction, ...]
    restricted_from: tuple[str, ...]  # campaign classes closed to the customer now
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


def eligibility(engine: Engine, actor: Actor, *, now: datetime) -> Eligibility:
    """Campaign participations used and restored, and the restrictions in force with why."""
    access.require(actor, "customer.assets")
    q, rr = campaign_quotas.c, risk_restrictions.c
    with UnitOfWork(engine, readonly=True) as uow:
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
        campaigns=tuple(
            CampaignQuota(
                campaign_id=r.campaign_id,
                kind=r.kind,
                high_value=bool(r.high_value),
                used=int(r.used),
                restored=restored.get(r.campaign_id, 0),
            )
            for r in quotas
        ),
        restrictions=tuple(
            Restriction(
                id=r.id, kind=r.kind, rule=r.rule, reason=r.reason, since=r.since, until=r.until
            )
            for r in active
        ),
        restricted_from=("high_value",) if "restrict_high_value" in kinds else (),
        refund_rights_suspended="suspend" in kinds,
    )


# -- inbox -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxMessage:
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


@dataclass(frozen=True, slots=True)
class Inbox:
    items: tuple[InboxMessage, ...]  # newest first
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


def inbox(engine: Engine, actor: Actor, *, limit: int = 20, cursor: str | None = None) -> Inbox:
    """In-app messages, newest first, rendered in the message's locale."""
    access.require(actor, "customer.assets")
    before = decode_id_cursor(cursor)
    m = inbox_messages.c
    query = select(inbox_messages).where(m.customer_id == actor.id)
    if before is not None:
        query = query.where(m.id < before)
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(query.order_by(m.id.desc()).limit(limit + 1)).all()
        unread = uow.conn.execute(
            select(func.count()).where(m.customer_id == actor.id, m.read_at.is_(None))
        ).scalar_one()
    page = rows[:limit]
    return Inbox(
        items=tuple(_message(r) for r in page),
        unread=int(unread),
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def read_message(engine: Engine, actor: Actor, *, message_id: int, now: datetime) -> InboxMessage:
    """Mark one of the actor's messages read (the first reading time is kept)."""
    access.require(actor, "customer.assets")
    return _message(mark_read(engine, customer_id=actor.id, message_id=message_id, now=now))
