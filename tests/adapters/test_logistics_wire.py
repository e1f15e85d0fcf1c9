"""The logistics wire: return objects, refusals, tracking webhooks and their signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from refundry.adapters.logistics import (
    LogisticsProtocolError,
    LogisticsRefused,
    ReturnBooking,
    ReturnTracking,
    TrackingEvent,
    TrackingWebhookRejected,
    booking_from_wire,
    error_object,
    event_to_body,
    parse_tracking_webhook,
    receive_tracking_webhook,
    return_object,
    tracking_from_wire,
)
from refundry.adapters.webhook_signing import sign_webhook

SECRET = "whsec_logistics_1"
AT = datetime(2024, 6, 3, 14, 0, tzinfo=UTC)
EVENT = TrackingEvent(
    event_id="tev_000005",
    tracking_number="RR473124829ZZ",
    status="delivered",
    occurred_at=AT,
    location="Warehouse, Lyon",
)
BODY = event_to_body(EVENT)
BOOKING = ReturnBooking(
    carrier="sandbox-post",
    service="prepaid_label",
    tracking_number="RR473124829ZZ",
    cost=1000,
    label={"kind": "prepaid_label", "url": "https://labels.example/RR473124829ZZ.pdf"},
)


def test_the_webhook_body_is_compact_sorted_json() -> None:
    assert BODY == (
        b'{"created":"2024-06-03T14:00:00+00:00","data":{"object":{"location":"Warehouse, Lyon",'
        b'"object":"tracking","occurred_at":"2024-06-03T14:00:00+00:00","status":"delivered",'
        b'"tracking_number":"RR473124829ZZ"}},"id":"tev_000005","object":"event",'
        b'"type":"tracking.updated"}'
    )
    assert parse_tracking_webhook(BODY) == EVENT


def test_a_scan_without_a_location_round_trips() -> None:
    event = TrackingEvent("tev_1", "RR1", "label_created", AT, None)
    assert parse_tracking_webhook(event_to_body(event)) == event


def mutated(**changes: object) -> bytes:
    doc = json.loads(BODY)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = doc
        for part in parents:
            target = target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"not json", None, "webhook body is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"[]", None, "webhook body must be a JSON object"),
        (b'{"x": NaN}', None, "webhook body is not JSON: NaN is not allowed"),
        (mutated(type="refund.succeeded"), "type", "unknown event type 'refund.succeeded'"),
        (mutated(id=...), "id", "id must be a non-empty string"),
        (mutated(data__object__object="refund"), "data.object", None),
        (
            mutated(data__object__status="lost"),
            "data.object.status",
            "unknown tracking status 'lost'",
        ),
        (
            mutated(data__object__tracking_number=""),
            "data.object.tracking_number",
            "data.object.tracking_number must be a non-empty string",
        ),
        (
            mutated(data__object__occurred_at="2024-06-03T14:00:00"),
            "data.object.occurred_at",
            "data.object.occurred_at must carry a UTC offset",
        ),
        (
            mutated(data__object__occurred_at="yesterday"),
            "data.object.occurred_at",
            "data.object.occurred_at is not an ISO 8601 time: 'yesterday'",
        ),
        (
            mutated(data__object__tracking_number="SF\x00"),
            "data.object.tracking_number",
            "data.object.tracking_number must be Unicode text without control characters "
            "(found '\\x00')",
        ),
        (mutated(id="e" * 101), "id", "id must be at most 100 characters"),
        (
            mutated(data__object__location=7),
            "data.object.location",
            "location must be a string or null",
        ),
    ],
)
def test_malformed_webhooks_are_rejected_naming_the_field(
    body: bytes, field: str | None, message: str | None
) -> None:
    with pytest.raises(TrackingWebhookRejected) as err:
        parse_tracking_webhook(body)
    assert (err.value.code, err.value.field) == ("logistics.webhook_invalid", field)
    if message is not None:
        assert err.value.message == message


def test_a_signed_webhook_is_received_within_the_tolerance() -> None:
    header = sign_webhook(SECRET, AT, BODY)
    assert receive_tracking_webhook(SECRET, header, BODY, now=AT + timedelta(minutes=5)) == EVENT


@pytest.mark.parametrize(
    ("secret", "header", "body", "now", "message"),
    [
        (SECRET, None, BODY, AT, "signature header is missing"),
        ("whsec_other", "sign", BODY, AT, "signature does not match the body"),
        (SECRET, "sign", BODY + b" ", AT, "signature does not match the body"),
        (
            SECRET,
            "sign",
            BODY,
            AT + timedelta(minutes=5, seconds=1),
            "signature time 2024-06-03T14:00:00+00:00 is outside the tolerance",
        ),
    ],
)
def test_bad_or_stale_signatures_are_rejected_with_the_logistics_code(
    secret: str, header: str | None, body: bytes, now: datetime, message: str
) -> None:
    signed = sign_webhook(secret, AT, BODY) if header == "sign" else header
    with pytest.raises(TrackingWebhookRejected) as err:
        receive_tracking_webhook(SECRET, signed, body, now=now)
    assert (err.value.code, err.value.message) == ("logistics.webhook_signature", message)


def wire(**changes: object) -> dict[str, object]:
    doc = return_object(
        booking=BOOKING,
        rma="RMA-1",
        idempotency_key="k1",
        from_address="1 Rue A, Paris",
        to_address="Warehouse, Lyon",
        created=AT - timedelta(days=2),
        events=[EVENT],
    )
    doc.update(changes)
    return doc


def test_a_return_object_reads_back_into_the_booking_and_its_scans() -> None:
    doc = wire()
    assert doc["status"] == "delivered"
    assert doc["events"] == [
        {
            "id": "tev_000005",
            "tracking_number": "RR473124829ZZ",
            "status": "delivered",
            "occurred_at": "2024-06-03T14:00:00+00:00",
            "location": "Warehouse, Lyon",
        }
    ]
    assert booking_from_wire(doc) == BOOKING
    assert tracking_from_wire(json.loads(json.dumps(doc))) == ReturnTracking(
        rma="RMA-1", booking=BOOKING, status="delivered", events=(EVENT,)
    )


def test_an_error_object_is_a_refusal_with_the_carriers_code_and_parameter() -> None:
    with pytest.raises(LogisticsRefused) as err:
        booking_from_wire(
            error_object(code="address_not_served", message="not here", param="from_address")
        )
    refused = err.value
    assert (refused.code, refused.reason, refused.field, refused.message) == (
        "logistics.refused",
        "address_not_served",
        "from_address",
        "not here",
    )


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([], None),
        ({"object": "refund"}, None),
        (wire(cost=10.0), "cost"),
        (wire(cost=-1), "cost"),
        (wire(label="a label"), "label"),
        (wire(service="courier"), "service"),
        (wire(carrier=""), "carrier"),
        ({"error": {"message": "no code"}}, "error.code"),
    ],
)
def test_answers_that_are_not_return_objects_are_protocol_errors(
    doc: object, field: str | None
) -> None:
    with pytest.raises(LogisticsProtocolError) as err:
        booking_from_wire(doc)
    assert (err.value.code, err.value.field) == ("logistics.protocol", field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"events": None}, "events"),
        ({"events": ["x"]}, "events[0]"),
        ({"events": [{"status": "delivered"}]}, "events[0].id"),
        ({"status": "lost"}, "status"),
    ],
)
def test_a_malformed_tracking_answer_is_a_protocol_error(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(LogisticsProtocolError) as err:
        tracking_from_wire(wire(**changes))
    assert err.value.field == field


def test_an_event_of_another_parcel_in_a_tracking_answer_is_a_protocol_error() -> None:
    other = {**wire()["events"][0], "tracking_number": "RR000000000ZZ"}  # type: ignore[index]
    with pytest.raises(LogisticsProtocolError) as err:
        tracking_from_wire(wire(events=[other]))
    assert err.value.field == "events[0].tracking_number"


def test_booking_and_event_check_their_own_values() -> None:
    with pytest.raises(ValueError, match="unknown service 'courier'"):
        ReturnBooking("c", "courier", "RR1", 100)
    with pytest.raises(TypeError, match="cost must be non-negative int minor units"):
        ReturnBooking("c", "pickup", "RR1", 15.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown tracking status 'lost'"):
        TrackingEvent("e", "RR1", "lost", AT)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        TrackingEvent("e", "RR1", "delivered", AT.replace(tzinfo=None))
    assert ReturnBooking("c", "pickup", "RR1", 0).label == {}
    assert hash(BOOKING) == hash(
        ReturnBooking("sandbox-post", "prepaid_label", "RR473124829ZZ", 1000)
    )
