"""The payment-gateway port: how refundry's apply path moves money, exactly once.

A refund is asked for with an idempotency key that refundry owns (one per outbox row). The
gateway promises what Stripe's ``Idempotency-Key`` promises: the same key never moves money
twice and always names the same gateway refund. Refunds are asynchronous: the answer is usually
``"accepted"``, and a webhook event later says ``refund.succeeded`` or ``refund.failed``.

The wire shapes (a Stripe-like refund object, an error object, an event) live here too, so the
sandbox, the HTTP client and the HTTP sandbox all say exactly the same thing in ``raw``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, get_args, runtime_checkable

from refundry.adapters.errors import GatewayProtocolError, WebhookRejected
from refundry.domain.reader import text_problem

__all__ = [
    "AnswerStatus",
    "EventType",
    "GatewayAnswer",
    "GatewayEvent",
    "Json",
    "PaymentGateway",
    "RefundStatus",
    "answer_from_wire",
    "error_object",
    "event_to_body",
    "parse_webhook",
    "refund_object",
]

Json = dict[str, object]

AnswerStatus = Literal[
    "accepted",  # the gateway took the refund; a webhook will say how it ended
    "succeeded",  # the money has gone back (a synchronous success, or a lookup after the webhook)
    "refused",  # no money moves: refused at once, or failed later (the code says why)
]
RefundStatus = Literal["pending", "succeeded", "failed"]  # the refund object's own words
EventType = Literal["refund.succeeded", "refund.failed"]

_STATUS_OF_REFUND: dict[str, AnswerStatus] = {
    "pending": "accepted",
    "succeeded": "succeeded",
    "failed": "refused",
}
_EVENT_TYPES: dict[str, EventType] = {t: t for t in get_args(EventType)}


@runtime_checkable
class PaymentGateway(Protocol):
    """What the outbox relay needs from a gateway. Implementations must be thread-safe."""

    def refund(
        self, *, idempotency_key: str, transaction_id: str, amount: int, currency: str
    ) -> GatewayAnswer:
        """Refund ``amount`` minor units of the captured ``transaction_id``.

        The same ``idempotency_key`` always answers about the same refund and never creates a
        second one. Raises ``GatewayTimeout`` (outcome unknown: ``lookup`` or retry with the
        same key), ``GatewayUnavailable`` (not reached: retry later with the same key) and
        ``GatewayIdempotencyConflict`` (key reused with other parameters: a bug).
        """
        ...

    def lookup(self, *, idempotency_key: str) -> GatewayAnswer | None:
        """What the gateway knows now of the refund asked under this key; None if nothing."""
        ...


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    """The gateway's answer to a refund request or a lookup."""

    status: AnswerStatus
    gateway_refund_id: str | None  # None when refused before a refund object existed
    code: str | None  # the gateway's reason when refused: card_closed, amount_exceeds_captured…
    message: str
    raw: Json = field(default_factory=dict, hash=False, repr=False)  # JSON-able, to record

    def __post_init__(self) -> None:
        if self.status not in get_args(AnswerStatus):
            raise ValueError(f"unknown answer status {self.status!r}")

    @property
    def is_final(self) -> bool:
        """True when no webhook can change the outcome any more (as far as the answer knows)."""
        return self.status != "accepted"


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A webhook event: a refund reached its end. Delivered at least once, in any order."""

    event_id: str  # the same on every delivery of the event: deduplicate on it
    type: EventType
    gateway_refund_id: str
    idempotency_key: str  # refundry's own key: match on it, the event may beat the answer
    amount: int
    currency: str
    code: str | None  # failure code for refund.failed, None for refund.succeeded
    occurred_at: datetime

    def __post_init__(self) -> None:
        if self.type not in get_args(EventType):
            raise ValueError(f"unknown event type {self.type!r}")
        if type(self.amount) is not int:
            raise TypeError(f"amount must be int minor units, got {self.amount!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


# -- the wire -------------------------------------------------------------------------------


def refund_object(
    *,
    refund_id: str,
    status: RefundStatus,
    transaction_id: str,
    amount: int,
    currency: str,
    idempotency_key: str,
    created: datetime,
    failure_code: str | None = None,
) -> Json:
    """A refund as the gateway shows it (Stripe-like)."""
    return {
        "object": "refund",
        "id": refund_id,
        "status": status,
        "charge": transaction_id,
        "amount": amount,
        "currency": currency,
        "idempotency_key": idempotency_key,
        "failure_code": failure_code,
        "created": created.isoformat(),
    }


def error_object(*, code: str, message: str, kind: str = "refund_error") -> Json:
    """An error as the gateway shows it."""
    return {"error": {"type": kind, "code": code, "message": message}}


def answer_from_wire(body: object) -> GatewayAnswer:
    """Read a refund object or an error object into an answer; anything else is a protocol error."""
    if not isinstance(body, dict):
        raise GatewayProtocolError(f"expected a JSON object, got {type(body).__name__}")
    error = body.get("error")
    if isinstance(error, dict):
        code = _str(error, "code", GatewayProtocolError)
        message = error.get("message")
        return GatewayAnswer(
            status="refused",
            gateway_refund_id=None,
            code=code,
            message=message if isinstance(message, str) else code,
            raw=body,
        )
    if body.get("object") != "refund":
        raise GatewayProtocolError("expected a refund object or an error object")
    refund_id = _str(body, "id", GatewayProtocolError)
    status = _STATUS_OF_REFUND.get(str(body.get("status")))
    if status is None:
        raise GatewayProtocolError(f"unknown refund status {body.get('status')!r}")
    failure = body.get("failure_code")
    failure_code = failure if isinstance(failure, str) else None
    return GatewayAnswer(
        status=status,
        gateway_refund_id=refund_id,
        code=failure_code,
        message=f"refund {refund_id} {body['status']}"
        + (f": {failure_code}" if failure_code else ""),
        raw=body,
    )


def event_to_body(event: GatewayEvent) -> bytes:
    """The webhook body for an event: compact JSON, keys sorted, so signatures are stable."""
    refund_status: RefundStatus = "succeeded" if event.type == "refund.succeeded" else "failed"
    body: Json = {
        "id": event.event_id,
        "object": "event",
        "type": event.type,
        "created": event.occurred_at.isoformat(),
        "data": {
            "object": {
                "object": "refund",
                "id": event.gateway_refund_id,
                "status": refund_status,
                "amount": event.amount,
                "currency": event.currency,
                "idempotency_key": event.idempotency_key,
                "failure_code": event.code,
            }
        },
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_webhook(body: bytes) -> GatewayEvent:
    """Read a webhook body strictly; raises ``WebhookRejected`` naming what is wrong.

    Check the signature first (``webhook_signing.verify_webhook``): parsing proves nothing.
    """
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(f"webhook body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WebhookRejected("webhook body must be a JSON object")
    data = doc.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise WebhookRejected("webhook has no data.object", field="data.object")
    event_type = _EVENT_TYPES.get(_str(doc, "type", WebhookRejected))
    if event_type is None:
        raise WebhookRejected(f"unknown event type {doc['type']!r}", field="type")
    amount = obj.get("amount")
    if type(amount) is not int:
        raise WebhookRejected("amount must be an integer", field="data.object.amount")
    code = obj.get("failure_code")
    if code is not None and (
        not isinstance(code, str) or text_problem(code, max_length=64) is not None
    ):
        raise WebhookRejected(
            "failure_code must be a string of at most 64 characters without control characters",
            field="data.object.failure_code",
        )
    if event_type == "refund.failed" and code is None:
        raise WebhookRejected("refund.failed needs a failure_code", field="data.object")
    return GatewayEvent(
        event_id=_str(doc, "id", WebhookRejected),
        type=event_type,
        gateway_refund_id=_str(obj, "id", WebhookRejected, "data.object."),
        idempotency_key=_str(
            obj, "idempotency_key", WebhookRejected, "data.object.", max_length=200
        ),
        amount=amount,
        currency=_str(obj, "currency", WebhookRejected, "data.object."),
        code=code,
        occurred_at=_aware(_str(doc, "created", WebhookRejected)),
    )


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


def _str(
    doc: dict[str, object],
    key: str,
    error: type[GatewayProtocolError] | type[WebhookRejected],
    prefix: str = "",
    *,
    max_length: int = 100,
) -> str:
    """A non-empty string as the store will hold it (ids are String(100), keys String(200)):
    a NUL from a signed sender would otherwise fail PostgreSQL's insert, and be sent again."""
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise error(f"{prefix}{key} must be a non-empty string", field=prefix + key)
    problem = text_problem(value, max_length=max_length)
    if problem is not None:
        raise error(f"{prefix}{key} {problem}", field=prefix + key)
    return value


def _aware(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookRejected(
            f"created is not an ISO 8601 time: {text!r}", field="created"
        ) from None
    if when.tzinfo is None:
        raise WebhookRejected("created must carry a UTC offset", field="created")
    return when
