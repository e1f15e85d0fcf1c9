"""The delivery log of one endpoint (every delivery, newest first, with each attempt: its time,
status code, latency and when the next is due) and replays: one event, or every event of a
time range the endpoint takes, queued to it again with the same ``webhook-id``.

A replay of a delivery that succeeded or failed starts a new round of attempts (the log keeps
the earlier ones); one still pending is left as it is. A time range holds at most
``REPLAY_LIMIT`` events (``webhook.replay_too_large`` otherwise: replay it in parts); a refused
replay queues nothing. Events older than the setting ``webhook_retention_days`` that wait for no
delivery are forgotten by the worker (``sweep_webhooks``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, select, update

from refundry.domain.errors import InvalidInput
from refundry.services.access import Actor, require
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import NotFound, Unprocessable
from refundry.services.reads import decode_id_cursor, encode_cursor
from refundry.services.shop_webhooks.endpoints import endpoint_of
from refundry.services.shop_webhooks.fanout import queue_deliveries, subscribed
from refundry.services.uow import UnitOfWork
from refundry.store.tables import webhook_attempts, webhook_deliveries, webhook_events

__all__ = [
    "REPLAY_LIMIT",
    "Attempt",
    "Delivery",
    "delivery_log",
    "replay",
    "sweep_webhooks",
]

REPLAY_LIMIT = 1000
_d, _a, _ev = webhook_deliveries.c, webhook_attempts.c, webhook_events.c


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int  # 1, 2, … over every round of the delivery
    at: datetime
    status_code: int | None  # None: nothing answered
    latency_ms: int
    error: str | None
    next_attempt_at: datetime | None  # None: no further attempt was scheduled


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    event_type: str
    occurred_at: datetime
    status: str  # pending | succeeded | failed
    attempts: int  # every attempt so far
    next_attempt_at: datetime | None
    last_status_code: int | None
    attempt_log: tuple[Attempt, ...]


def delivery_log(
    engine: Engine,
    *,
    actor: Actor,
    endpoint_id: str,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Delivery], str | None]:
    """One page of the endpoint's deliveries, newest first, and the next page's cursor."""
    require(actor, "webhook.manage")
    below = decode_id_cursor(cursor)
    with UnitOfWork(engine, readonly=True) as uow:
        endpoint_of(uow.conn, endpoint_id)
        query = (
            select(webhook_deliveries, _ev.type, _ev.occurred_at)
            .join(webhook_events, _ev.id == _d.event_id)
            .where(_d.endpoint_id == endpoint_id)
            .order_by(_d.id.desc())
            .limit(limit + 1)
        )
        if status is not None:
            query = query.where(_d.status == status)
        if below is not None:
            query = query.where(_d.id < below)
        rows = uow.conn.execute(query).all()
        page = rows[:limit]
        attempts: dict[int, list[Attempt]] = defaultdict(list)
        if page:
            for a in uow.conn.execute(
                select(webhook_attempts)
                .where(_a.delivery_id.in_([r.id for r in page]))
                .order_by(_a.delivery_id, _a.attempt)
            ):
                attempts[a.delivery_id].append(
                    Attempt(
                        a.attempt, a.at, a.status_code, a.latency_ms, a.error, a.next_attempt_at
                    )
                )
    deliveries = [
        Delivery(
            id=r.id,
            event_id=r.event_id,
            event_type=r.type,
            occurred_at=r.occurred_at,
            status=r.status,
            attempts=int(r.total_attempts),
            next_attempt_at=r.next_attempt_at if r.status == "pending" else None,
            last_status_code=r.last_status_code,
            attempt_log=tuple(attempts[r.id]),
        )
        for r in page
    ]
    more = encode_cursor(page[-1].id) if len(rows) > limit else None
    return deliveries, more


def replay(
    engine: Engine,
    *,
    actor: Actor,
    endpoint_id: str,
    now: datetime,
    event_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Queue ``event_id``, or every event the endpoint takes that occurred in
    ``[since, until)``, to the endpoint again, due now; returns how many were queued."""
    require(actor, "webhook.manage")
    if (event_id is None) == (since is None and until is None):
        raise InvalidInput(
            "give event_id, or since and until", code="webhook.replay_invalid", field="event_id"
        )
    if event_id is None and (since is None or until is None or since >= until):
        raise InvalidInput(
            "since and until are both needed, since before until",
            code="webhook.replay_invalid",
            field="until",
        )
    with UnitOfWork(engine) as uow:
        endpoint = endpoint_of(uow.conn, endpoint_id, lock=True)
        types = json.loads(endpoint.event_types)
        chosen = _events(uow.conn, types, event_id=event_id, since=since, until=until)
        queued = _requeue(uow.conn, endpoint_id, chosen, now=now)
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=None)
        trail.record(
            "webhook.replayed",
            endpoint_id=endpoint_id,
            event_id=event_id,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
            events=queued,
        )
        trail.flush(uow.conn)
        uow.commit()
    return queued


def _events(
    conn: Connection,
    types: list[str],
    *,
    event_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[str]:
    if event_id is not None:
        row = conn.execute(select(_ev.id, _ev.type).where(_ev.id == event_id)).first()
        if row is None:
            raise NotFound(f"no webhook event {event_id!r}", code="webhook.event_not_found")
        if not subscribed(types, row.type):
            raise Unprocessable(
                f"the endpoint does not take {row.type!r} events",
                code="webhook.event_not_subscribed",
                field="event_id",
            )
        return [row.id]
    in_range = select(_ev.id, _ev.type).where(_ev.occurred_at >= since, _ev.occurred_at < until)
    if "*" not in types:
        in_range = in_range.where(_ev.type.in_(types))
    count = conn.execute(select(func.count()).select_from(in_range.subquery())).scalar_one()
    if count > REPLAY_LIMIT:
        raise Unprocessable(
            f"{count} events in the range, at most {REPLAY_LIMIT} per replay: split it",
            code="webhook.replay_too_large",
            field="until",
        )
    return [r.id for r in conn.execute(in_range.order_by(_ev.occurred_at, _ev.id))]


def _requeue(conn: Connection, endpoint_id: str, event_ids: list[str], *, now: datetime) -> int:
    if not event_ids:
        return 0
    existing = {
        r.event_id: r.status
        for r in conn.execute(
            select(_d.event_id, _d.status).where(
                _d.endpoint_id == endpoint_id, _d.event_id.in_(event_ids)
            )
        )
    }
    again = [e for e, s in existing.items() if s != "pending"]
    if again:
        conn.execute(
            update(webhook_deliveries)
            .where(_d.endpoint_id == endpoint_id, _d.event_id.in_(again))
            .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
        )
    fresh = [(e, endpoint_id) for e in event_ids if e not in existing]
    queue_deliveries(conn, fresh, now=now)
    return len(again) + len(fresh)


def sweep_webhooks(engine: Engine, *, now: datetime, keep: timedelta, batch: int = 500) -> int:
    """Forget the events that occurred more than ``keep`` before ``now`` and wait for no
    delivery (every delivery succeeded or failed), with their deliveries and log, ``batch``
    events a transaction; returns how many events went. A forgotten event cannot be replayed
    (``webhook.event_not_found``)."""
    total = 0
    waiting = select(_d.event_id).where(_d.status == "pending")
    while True:
        with UnitOfWork(engine) as uow:
            ids = list(
                uow.conn.execute(
                    select(_ev.id)
                    .where(_ev.occurred_at < now - keep, _ev.id.not_in(waiting))
                    .order_by(_ev.occurred_at)
                    .limit(batch)
                ).scalars()
            )
            if ids:
                deliveries = select(_d.id).where(_d.event_id.in_(ids))
                uow.conn.execute(delete(webhook_attempts).where(_a.delivery_id.in_(deliveries)))
                uow.conn.execute(delete(webhook_deliveries).where(_d.event_id.in_(ids)))
                uow.conn.execute(delete(webhook_events).where(_ev.id.in_(ids)))
            uow.commit()
        total += len(ids)
        if len(ids) < batch:
            return total
