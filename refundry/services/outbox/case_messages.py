"""What the customer was told about a case, and whether it reached them (issue 14 point 2).

The relay retries a notification whose SMS (or email) the provider refused, with backoff, and
gives up after its attempts (a dead letter). Operators count those on /metrics
(``refundry_outbox_dead``); an agent looking at the case needs the message itself: which one,
on which channels it arrived, and for one that did not, how many tries, the provider's error
and whether the relay still tries. ``case_messages`` reads that from the outbox (the case's
notifications are keyed ``notify:<case id>:…``, its refund's ``notify:<refund id>:…``) and
``notification_deliveries`` (the channels that took it). The desk only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, or_, select

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, notification_deliveries, outbox

__all__ = ["CaseMessage", "case_messages"]


@dataclass(frozen=True, slots=True)
class CaseMessage:
    template: str  # refundry.notifications.templates: case.received, refund.sent …
    created_at: datetime
    status: str  # queued | delivered | retrying | failed (the relay gave up: a dead letter)
    delivered: tuple[str, ...]  # the channels that took it: in_app, sms, email
    attempts: int
    error: str | None  # the last failure, as the relay recorded it (per channel)
    next_try_at: datetime | None  # retrying: when the relay tries again


def _prefix(value: str) -> Any:
    """Keys ``notify:<value>:…``, as a range the unique index on ``key`` answers."""
    return outbox.c.key.between(f"notify:{value}:", f"notify:{value};", symmetric=False)


def _status(row: Any) -> str:
    if row.status == "done":
        return "delivered"
    if row.status == "dead":
        return "failed"
    return "retrying" if row.last_error else "queued"


def case_messages(engine: Engine, case_id: str, actor: Actor) -> list[CaseMessage]:
    """The case's notifications, oldest first, with how each fared (agents and admins; no
    other role sees the delivery record). An unknown case has none."""
    access.require(actor, "case.messages")
    with UnitOfWork(engine, readonly=True) as uow:
        return _read(uow.conn, case_id)


def _read(conn: Connection, case_id: str) -> list[CaseMessage]:
    refund_id = conn.execute(select(cases.c.refund_id).where(cases.c.id == case_id)).scalar()
    whose = [_prefix(case_id)] + ([_prefix(refund_id)] if refund_id else [])
    rows = list(
        conn.execute(
            select(outbox)
            .where(outbox.c.topic == "notify", or_(*whose))
            .order_by(outbox.c.created_at, outbox.c.id)
        )
    )
    d = notification_deliveries.c
    took: dict[str, list[str]] = {}
    if rows:
        keys = [r.key for r in rows]
        for key, channel in conn.execute(
            select(d.key, d.channel).where(d.key.in_(keys)).order_by(d.at, d.channel)
        ):
            took.setdefault(key, []).append(channel)
    return [
        CaseMessage(
            template=str(json.loads(r.payload).get("template", "")),
            created_at=r.created_at,
            status=_status(r),
            delivered=tuple(took.get(r.key, ())),
            attempts=int(r.attempts),
            error=r.last_error if r.status != "done" else None,
            next_try_at=r.available_at if r.status == "pending" and r.last_error else None,
        )
        for r in rows
    ]
