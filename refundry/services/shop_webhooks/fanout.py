"""A domain event the relay took from the outbox → its webhook events and one delivery per
(event, endpoint) subscribed to it, in a transaction of its own before the relay publishes the
event: once, however often the relay repeats the message (a failed publish, a crashed worker),
since the event ids are derived from the outbox key and both inserts skip what is there.

Endpoints registered later do not receive earlier events unless replayed (services/
shop_webhooks/log.py); a disabled endpoint gets no deliveries while disabled, and those it had
waiting are due again when it is enabled (``resume_deliveries``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from refundry.services.shop_webhooks.catalogue import WebhookEvent, webhook_events
from refundry.store.prepared import Prepared
from refundry.store.tables import webhook_deliveries, webhook_endpoints
from refundry.store.tables import webhook_events as events

__all__ = ["fan_out", "queue_deliveries", "resume_deliveries", "subscribed"]


def subscribed(event_types: Sequence[str], name: str) -> bool:
    return "*" in event_types or name in event_types


# Built once per dialect (compiled once, run on the driver: store/prepared.py); both skip the
# rows that are there, so that repeating a fan-out adds nothing.
_IGNORING_DUPLICATES = {
    (name, table.name): Prepared(dialect.insert(table).on_conflict_do_nothing())
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
    for table in (events, webhook_deliveries)
}
_ENABLED = Prepared(
    select(webhook_endpoints.c.id, webhook_endpoints.c.event_types).where(
        webhook_endpoints.c.status == "enabled"
    )
)


def _insert_ignoring_duplicates(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        _IGNORING_DUPLICATES[conn.dialect.name, table.name].run_many(conn, rows)


def fan_out(
    conn: Connection, *, key: str, payload: dict[str, Any], occurred_at: datetime, now: datetime
) -> int:
    """Store the domain event's webhook events and queue their deliveries (due at once);
    returns how many deliveries were queued."""
    made = webhook_events(key, payload, occurred_at)
    if not made:
        return 0
    _insert_ignoring_duplicates(
        conn,
        events,
        [
            {
                "id": e.id,
                "type": e.type,
                "customer_id": payload.get("customer_id"),
                "body": e.body,
                "occurred_at": e.occurred_at,
            }
            for e in made
        ],
    )
    subscriptions = [(r.id, json.loads(r.event_types)) for r in _ENABLED.rows(conn)]
    pairs = [(e, eid) for e in made for eid, types in subscriptions if subscribed(types, e.type)]
    return queue_deliveries(conn, pairs, now=now)


def queue_deliveries(
    conn: Connection, pairs: Iterable[tuple[WebhookEvent | str, str]], *, now: datetime
) -> int:
    """A pending delivery, due ``now``, per (event or event id, endpoint id) not queued yet."""
    rows = [
        {
            "event_id": e if isinstance(e, str) else e.id,
            "endpoint_id": endpoint_id,
            "status": "pending",
            "attempts": 0,
            "total_attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for e, endpoint_id in pairs
    ]
    _insert_ignoring_duplicates(conn, webhook_deliveries, rows)
    return len(rows)


def resume_deliveries(conn: Connection, *, endpoint_id: str, now: datetime) -> None:
    """An endpoint enabled again: its waiting deliveries are due now, each with a new round."""
    conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.status == "pending",
        )
        .values(attempts=0, next_attempt_at=now, updated_at=now)
    )
