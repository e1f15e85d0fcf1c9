"""Writing to the outbox: messages committed with the change that caused them, sent after."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, select

from refundry.domain.json_text import compact
from refundry.observability import current_request_id
from refundry.services.refunds.batch import INSERT_MESSAGES, RowBatch
from refundry.store.tables import customers

__all__ = ["Topic", "enqueue", "notify_customer"]


class Topic(StrEnum):
    """What an outbox message is for; the relay dispatches on it (services/outbox/relay.py)."""

    GATEWAY_REFUND = "gateway.refund"  # money to one external tender
    LOGISTICS_BOOK = "logistics.book"  # a return label or pickup with the carrier
    NOTIFY = "notify"  # a customer notification (inbox, SMS, email per preferences)
    EVENT = "event"  # a domain event for the shop's systems


_TOPICS = frozenset(t.value for t in Topic)  # a set test: cheaper than Topic(topic) per message


def enqueue(
    conn: Connection,
    *,
    topic: str,
    key: str,
    payload: dict[str, Any],
    at: datetime,
    batch: RowBatch | None = None,
    customer_id: str | None = None,
) -> None:
    """Queue one message; ``key`` is unique and is the receiver's idempotency key. With
    ``batch`` the row is written at the batch's flush, in the same transaction.
    ``customer_id``: whose message it is (by default the payload's ``customer_id``; None for a
    system act's), kept on the row so that it lives with the customer's rows. Written while
    serving an HTTP request, the payload carries that request's ``request_id``, so the relay's
    logs of the delivery (a gateway refund, a message) name the request that caused it."""
    if topic not in _TOPICS:  # an unknown topic raises here, in the writer's transaction
        raise ValueError(f"{topic!r} is not an outbox topic ({', '.join(sorted(_TOPICS))})")
    request_id = current_request_id()
    if request_id is not None and "request_id" not in payload:
        payload = {**payload, "request_id": request_id}
    row = {
        "topic": topic,
        "key": key,
        "customer_id": customer_id if customer_id is not None else payload.get("customer_id"),
        "status": "pending",
        "attempts": 0,
        "available_at": at,
        "created_at": at,
        "payload": compact(payload),
        # a domain event waits to be folded into /metrics' counters (metric_counters.py)
        "counted": topic != "event",
    }
    if batch is not None:
        batch.messages.append(row)
    else:
        INSERT_MESSAGES.run(conn, row)


def notify_customer(
    conn: Connection,
    *,
    customer_id: str,
    key: str,
    template: str,
    params: dict[str, Any],
    at: datetime,
    order_id: str | None = None,
    case_id: str | None = None,
    refund_id: str | None = None,
) -> None:
    """Queue a notification to a customer, in the customer's locale (topic ``notify``)."""
    locale = conn.execute(_LOCALE, {"customer_id": customer_id}).scalar_one()
    enqueue(
        conn,
        topic="notify",
        key=key,
        at=at,
        customer_id=customer_id,
        payload={
            "customer_id": customer_id,
            "locale": locale,
            "order_id": order_id,
            "case_id": case_id,
            "refund_id": refund_id,
            "template": template,
            "params": params,
        },
    )


_LOCALE = select(customers.c.locale).where(customers.c.id == bindparam("customer_id"))
