"""The logistics port: how a return gets its prepaid label or pickup, and how the parcel is tracked.

A return is booked with an idempotency key that refundry owns (one per outbox row): the same key
always names the same booking and never books twice. A carrier that will not take the return
(an address it does not serve, a service it does not offer) refuses with ``LogisticsRefused``;
a refusal books nothing, so the key stays free for a corrected booking.

Once the customer hands the parcel over, the carrier reports its journey with tracking webhooks,
one event per scan, delivered at least once and in any order:

    label_created → picked_up → in_transit → delivered      (or → exception)

The wire shapes (a return object, an error object, a tracking webhook) live here too, so the
sandbox, the HTTP client and the HTTP sandbox all say exactly the same thing.

Errors, all ``RefundryError`` with a stable dotted ``code``:

    LogisticsError                     logistics.error
    ├── LogisticsTimeout               logistics.timeout: the request may have reached the
    │                                  carrier and the outcome is unknown. Retry with the same
    │                                  key (or ``track`` the tracking number, when known).
    ├── LogisticsUnavailable           logistics.unavailable: the carrier could not be reached,
    │                                  or said it could not work now (5xx, 429). Retry later
    │                                  with the same key.
    ├── LogisticsRefused               logistics.refused: the carrier will not book this return;
    │                                  ``reason`` is its own code (address_not_served…) and
    │                                  ``field`` the parameter it objects to. Do not retry as is.
    ├── LogisticsIdempotencyConflict   logistics.idempotency_conflict: the key was already used
    │                                  with other parameters. A bug on our side; never retry.
    ├── LogisticsProtocolError         logistics.protocol: an answer we do not understand, or
    │                                  one refusing our credentials (logistics.unauthorized).
    └── TrackingWebhookRejected        a tracking webhook we must not act on
          codes: logistics.webhook_invalid (body), logistics.webhook_signature (signature
          missing, wrong or outside the tolerance)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from refundry.adapters.errors import WebhookRejected
from refundry.adapters.webhook_signing import DEFAULT_TOLERANCE, verify_webhook
from refundry.domain.errors import RefundryError
from refundry.domain.reader import text_problem

__all__ = [
    "SERVICES",
    "TRACKING_EVENT_TYPE",
    "TRACKING_STATUSES",
    "Json",
    "LogisticsError",
    "LogisticsIdempotencyConflict",
    "LogisticsProtocolError",
    "LogisticsProvider",
    "LogisticsRefused",
    "LogisticsTimeout",
    "LogisticsUnavailable",
    "ReturnBooking",
    "ReturnTracking",
    "Service",
    "TrackingEvent",
    "TrackingStatus",
    "TrackingWebhookRejected",
    "booking_from_wire",
    "error_object",
    "event_to_body",
    "parse_tracking_webhook",
    "receive_tracking_webhook",
    "return_object",
    "tracking_from_wire",
]

Json = dict[str, object]

Service = Literal["prepaid_label", "pickup"]
TrackingStatus = Literal["label_created", "picked_up", "in_transit", "delivered", "exception"]
SERVICES: tuple[Service, ...] = get_args(Service)
TRACKING_STATUSES: tuple[TrackingStatus, ...] = get_args(TrackingStatus)
TRACKING_EVENT_TYPE = "tracking.updated"  # the one webhook event type; the status says the rest

_STATUS: dict[str, TrackingStatus] = {s: s for s in TRACKING_STATUSES}


# -- errors ---------------------------------------------------------------------------------


class LogisticsError(RefundryError):
    code = "logistics.error"


class LogisticsTimeout(LogisticsError):
    code = "logistics.timeout"


class LogisticsUnavailable(LogisticsError):
    code = "logistics.unavailable"


class LogisticsRefused(LogisticsError):
    """The carrier will not book this return; ``reason`` is the carrier's own code."""

    code = "logistics.refused"

    def __init__(
        self, message: str, *, reason: str, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message, code=code, field=field)
        self.reason = reason


class LogisticsIdempotencyConflict(LogisticsError):
    code = "logistics.idempotency_conflict"


class LogisticsProtocolError(LogisticsError):
    code = "logistics.protocol"


class TrackingWebhookRejected(LogisticsError):
    code = "logistics.webhook_invalid"


# -- the port -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReturnBooking:
    """What the logistics provider booked for a return."""

    carrier: str
    service: str  # prepaid_label | pickup
    tracking_number: str
    cost: int  # minor units, what the carrier charges the shop
    label: dict[str, Any] = field(default_factory=dict, hash=False)  # label URL / code, or slot

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"unknown service {self.service!r}; expected one of {SERVICES}")
        if type(self.cost) is not int or self.cost < 0:
            raise TypeError(f"cost must be non-negative int minor units, got {self.cost!r}")
        if not self.carrier or not self.tracking_number:
            raise ValueError("carrier and tracking_number must not be empty")


@runtime_checkable
class LogisticsProvider(Protocol):
    """What the case process needs from a carrier. Implementations must be thread-safe."""

    def book_return(
        self, *, rma: str, service: str, from_address: str, to_address: str, key: str
    ) -> ReturnBooking:
        """Book a prepaid label or a pickup for a return; the same key books once.

        Raises ``LogisticsRefused`` (not booked: the reason says why), ``LogisticsTimeout``
        (outcome unknown: retry with the same key), ``LogisticsUnavailable`` (not reached:
        retry later with the same key) and ``LogisticsIdempotencyConflict`` (key reused with
        other parameters: a bug).
        """
        ...


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """One scan of a return parcel. Delivered at least once, in any order."""

    event_id: str  # the same on every delivery of the event: deduplicate on it
    tracking_number: str
    status: TrackingStatus
    occurred_at: datetime  # when the scan happened: order by it, not by arrival
    location: str | None = None

    def __post_init__(self) -> None:
        if self.status not in TRACKING_STATUSES:
            raise ValueError(f"unknown tracking status {self.status!r}")
        if not self.event_id or not self.tracking_number:
            raise ValueError("event_id and tracking_number must not be empty")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ReturnTracking:
    """What the carrier knows now of a booked return: the booking and its scans so far."""

    rma: str
    booking: ReturnBooking
    status: TrackingStatus  # the latest scan's status
    events: tuple[TrackingEvent, ...]  # every scan that happened, in the order it happened


# -- the wire -------------------------------------------------------------------------------


def return_object(
    *,
    booking: ReturnBooking,
    rma: str,
    idempotency_key: str,
    from_address: str,
    to_address: str,
    created: datetime,
    events: Sequence[TrackingEvent] = (),
) -> Json:
    """A booked return as the carrier shows it, with its scans so far in the order they happened."""
    return {
        "object": "return",
        "tracking_number": booking.tracking_number,
        "carrier": booking.carrier,
        "service": booking.service,
        "cost": booking.cost,
        "label": json.loads(json.dumps(booking.label)),  # a copy, and proof it is JSON-able
        "rma": rma,
        "idempotency_key": idempotency_key,
        "from_address": from_address,
        "to_address": to_address,
        "created": created.isoformat(),
        "status": events[-1].status if events else "label_created",
        "events": [{"id": e.event_id, **_scan(e)} for e in events],
    }


def error_object(
    *, code: str, message: str, kind: str = "refusal", param: str | None = None
) -> Json:
    """An error as the carrier shows it; ``param`` names the parameter it objects to."""
    error: Json = {"type": kind, "code": code, "message": message}
    if param is not None:
        error["param"] = param
    return {"error": error}


def booking_from_wire(body: object) -> ReturnBooking:
    """Read a return object into a booking; an error object raises ``LogisticsRefused``.

    Anything else is a ``LogisticsProtocolError``.
    """
    doc = _return_doc(body)
    return _booking(doc)


def tracking_from_wire(body: object) -> ReturnTracking:
    """Read a return object with its scans; anything else is a ``LogisticsProtocolError``."""
    doc = _return_doc(body)
    booking = _booking(doc)
    raw_events = doc.get("events")
    if not isinstance(raw_events, list):
        raise LogisticsProtocolError("events must be a list", field="events")
    events = []
    for n, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            raise LogisticsProtocolError("an event must be an object", field=f"events[{n}]")
        events.append(
            _event(
                raw,
                event_id=_str(raw, "id", LogisticsProtocolError, f"events[{n}]."),
                error=LogisticsProtocolError,
                prefix=f"events[{n}].",
            )
        )
        if events[-1].tracking_number != booking.tracking_number:
            raise LogisticsProtocolError(
                "an event names another tracking number", field=f"events[{n}].tracking_number"
            )
    status = _STATUS.get(str(doc.get("status")))
    if status is None:
        raise LogisticsProtocolError(f"unknown return status {doc.get('status')!r}", field="status")
    return ReturnTracking(
        rma=_str(doc, "rma", LogisticsProtocolError),
        booking=booking,
        status=status,
        events=tuple(events),
    )


def event_to_body(event: TrackingEvent) -> bytes:
    """The webhook body for an event: compact JSON, keys sorted, so signatures are stable."""
    body: Json = {
        "id": event.event_id,
        "object": "event",
        "type": TRACKING_EVENT_TYPE,
        "created": event.occurred_at.isoformat(),
        "data": {"object": {"object": "tracking", **_scan(event)}},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_tracking_webhook(body: bytes) -> TrackingEvent:
    """Read a tracking webhook body strictly; raises ``TrackingWebhookRejected`` naming what is
    wrong. Check the signature first (``receive_tracking_webhook``): parsing proves nothing."""
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrackingWebhookRejected(f"webhook body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise TrackingWebhookRejected("webhook body must be a JSON object")
    if _str(doc, "type", TrackingWebhookRejected) != TRACKING_EVENT_TYPE:
        raise TrackingWebhookRejected(f"unknown event type {doc['type']!r}", field="type")
    data = doc.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or obj.get("object") != "tracking":
        raise TrackingWebhookRejected("webhook has no tracking data.object", field="data.object")
    return _event(
        obj,
        event_id=_str(doc, "id", TrackingWebhookRejected),
        error=TrackingWebhookRejected,
        prefix="data.object.",
    )


def receive_tracking_webhook(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> TrackingEvent:
    """Verify the ``Refundry-Signature`` header, then parse: what an HTTP endpoint receiving
    tracking webhooks should call. Raises ``TrackingWebhookRejected`` either way."""
    try:
        verify_webhook(secret, header, body, now=now, tolerance=tolerance)
    except WebhookRejected as exc:
        raise TrackingWebhookRejected(exc.message, code="logistics.webhook_signature") from None
    return parse_tracking_webhook(body)


# -- reading helpers ------------------------------------------------------------------------

_ReadError = type[LogisticsProtocolError] | type[TrackingWebhookRejected]


def _scan(event: TrackingEvent) -> Json:
    return {
        "tracking_number": event.tracking_number,
        "status": event.status,
        "occurred_at": event.occurred_at.isoformat(),
        "location": event.location,
    }


def _return_doc(body: object) -> dict[str, object]:
    if not isinstance(body, dict):
        raise LogisticsProtocolError(f"expected a JSON object, got {type(body).__name__}")
    error = body.get("error")
    if isinstance(error, dict):
        reason = _str(error, "code", LogisticsProtocolError, "error.")
        message, param = error.get("message"), error.get("param")
        raise LogisticsRefused(
            message if isinstance(message, str) else reason,
            reason=reason,
            field=param if isinstance(param, str) else None,
        )
    if body.get("object") != "return":
        raise LogisticsProtocolError("expected a return object or an error object")
    return body


def _booking(doc: dict[str, object]) -> ReturnBooking:
    cost, label = doc.get("cost"), doc.get("label")
    if type(cost) is not int or cost < 0:
        raise LogisticsProtocolError("cost must be a non-negative integer", field="cost")
    if not isinstance(label, dict):
        raise LogisticsProtocolError("label must be an object", field="label")
    service = _str(doc, "service", LogisticsProtocolError)
    if service not in SERVICES:
        raise LogisticsProtocolError(f"unknown service {service!r}", field="service")
    return ReturnBooking(
        carrier=_str(doc, "carrier", LogisticsProtocolError, max_length=40),  # String(40)
        service=service,
        tracking_number=_str(doc, "tracking_number", LogisticsProtocolError),
        cost=cost,
        label=label,
    )


def _event(
    obj: dict[str, object], *, event_id: str, error: _ReadError, prefix: str
) -> TrackingEvent:
    status = _STATUS.get(_str(obj, "status", error, prefix))
    if status is None:
        raise error(f"unknown tracking status {obj['status']!r}", field=prefix + "status")
    location = obj.get("location")
    if location is not None and not isinstance(location, str):
        raise error("location must be a string or null", field=prefix + "location")
    return TrackingEvent(
        event_id=event_id,
        tracking_number=_str(obj, "tracking_number", error, prefix),
        status=status,
        occurred_at=_aware(_str(obj, "occurred_at", error, prefix), error, prefix + "occurred_at"),
        location=location,
    )


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


def _str(
    doc: dict[str, object], key: str, error: _ReadError, prefix: str = "", *, max_length: int = 100
) -> str:
    """A non-empty string as the store will hold it (ids and tracking numbers are String(100)):
    a NUL from a signed sender would otherwise fail PostgreSQL's insert, and be sent again."""
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise error(f"{prefix}{key} must be a non-empty string", field=prefix + key)
    problem = text_problem(value, max_length=max_length)
    if problem is not None:
        raise error(f"{prefix}{key} {problem}", field=prefix + key)
    return value


def _aware(text: str, error: _ReadError, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise error(f"{where} is not an ISO 8601 time: {text!r}", field=where) from None
    if when.tzinfo is None:
        raise error(f"{where} must carry a UTC offset", field=where)
    return when
