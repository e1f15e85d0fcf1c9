"""Every event type a shop's endpoint can receive, and how a domain event becomes them.

The outbox's domain events (topic ``event``) are written by the use cases in their own
transaction; the relay hands each to :func:`webhook_events`, which names the webhook events it
makes. A domain event whose type is not in :data:`EVENT_TYPES` is not sent: a new domain event
reaches shops by adding its name here (and its payload to docs/webhooks.md), nothing else.

``refund.applied`` also makes one ``effect.<kind>`` event per effect of the plan, so a shop
mirrors a reissued coupon or a reversed balance by subscribing to just that kind.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from typing import Any, NamedTuple

from refundry.domain.case import CaseState
from refundry.domain.json_text import compact, instant
from refundry.domain.plan_types import EffectKind

__all__ = ["EVENT_TYPES", "WebhookEvent", "event_id", "webhook_events"]

EVENT_TYPES: dict[str, str] = {
    "order.ingested": "an order refundry will refund against was recorded",
    "order.shipped": "the shop marked the order shipped",
    "order.delivered": "the shop marked the order delivered",
    "order.completed": "the shop marked the order completed",
    "order.cancelled": "the shop cancelled the order before shipment",
    **{f"case.{s.value}": f"an after-sales case moved to {s.value}" for s in CaseState},
    "case.note_added": "an agent wrote an internal note on a case",
    "case.assigned": "a case was claimed by or assigned to an agent",
    "case.debt_recovered": "part of an express refund's debt was paid back",
    "case.debt_written_off": "part of an express refund's debt was given up",
    "refund.applied": "a refund was applied: its money per tender and every effect",
    "refund.refunding": "a refund waits for the gateway",
    "refund.refunded": "every tender of a refund has its money back",
    "refund.refund_failed": "a tender's refund failed; an agent retries or moves it",
    **{f"effect.{k.value}": f"a refund's {k.value} effect was applied" for k in EffectKind},
    "inventory.restock": "a returned line passed inspection: put its units back",
}

# Domain events whose webhook type reads better under another name.
_RENAMED = {"restock": "inventory.restock"}
# What the outbox's payloads carry for refundry's own use only.
_INTERNAL = frozenset({"type", "request_id"})


class WebhookEvent(NamedTuple):
    id: str  # msg_…: the webhook-id, the same on every attempt and replay
    type: str
    body: str  # the JSON text signed and sent
    occurred_at: datetime


def event_id(source_key: str) -> str:
    """A stable id from the outbox key (and the effect's position): the same domain event
    fanned out twice (a relay that crashed after sending) makes the same id."""
    digest = hashlib.sha256(source_key.encode()).digest()[:20]
    return "msg_" + base64.b32encode(digest).decode().lower()


def webhook_events(key: str, payload: dict[str, Any], occurred_at: datetime) -> list[WebhookEvent]:
    """The webhook events of one domain event (outbox ``key`` and ``payload``), in order."""
    kind = str(payload.get("type", ""))
    name = _RENAMED.get(kind, kind)
    data = {k: v for k, v in payload.items() if k not in _INTERNAL}
    made: list[tuple[str, str, dict[str, Any]]] = []
    if name in EVENT_TYPES:
        made.append((key, name, data))
    if kind == "refund.applied":
        common = {k: data.get(k) for k in ("refund_id", "order_id", "customer_id", "currency")}
        for position, effect in enumerate(data.get("effects", [])):
            made.append(
                (
                    f"{key}#effect{position}",
                    f"effect.{effect['type']}",
                    {**common, "position": position, **effect},
                )
            )
    return [
        WebhookEvent(event_id(source), name, _body(name, occurred_at, data), occurred_at)
        for source, name, data in made
        if name in EVENT_TYPES
    ]


def _body(name: str, at: datetime, data: dict[str, Any]) -> str:
    """The Standard Webhooks payload: ``type``, ``timestamp`` (when it happened) and ``data``,
    every time in it RFC 3339 in UTC with ``Z`` (the domain events keep the offsets they were
    written with: a coupon's validity in the shop's +08:00)."""
    return compact({"type": name, "timestamp": instant(at), "data": _in_utc(data)})


# An ISO time with an offset, as datetime.isoformat() writes it; nothing else matches.
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}:\d{2}")


def _in_utc(value: Any) -> Any:
    if isinstance(value, str) and _TIME.fullmatch(value):
        return instant(datetime.fromisoformat(value))
    if isinstance(value, dict):
        return {k: _in_utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_in_utc(v) for v in value]
    return value
