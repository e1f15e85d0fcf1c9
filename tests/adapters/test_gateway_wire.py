"""The wire shapes: webhook bodies both ways, and reading answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundry.adapters.errors import GatewayProtocolError, WebhookRejected
from refundry.adapters.gateway import (
    GatewayAnswer,
    GatewayEvent,
    answer_from_wire,
    event_to_body,
    parse_webhook,
)
from refundry.domain.reader import text_problem

EVENT = GatewayEvent(
    event_id="evt_000007",
    type="refund.failed",
    gateway_refund_id="re_000003",
    idempotency_key="outbox-42",
    amount=49620,
    currency="CNY",
    code="card_closed",
    occurred_at=datetime(2024, 6, 1, 10, 2, tzinfo=UTC),
)


def test_event_body_is_compact_sorted_json() -> None:
    assert event_to_body(EVENT) == (
        b'{"created":"2024-06-01T10:02:00+00:00","data":{"object":{"amount":49620,'
        b'"currency":"CNY","failure_code":"card_closed","id":"re_000003",'
        b'"idempotency_key":"outbox-42","object":"refund","status":"failed"}},'
        b'"id":"evt_000007","object":"event","type":"refund.failed"}'
    )


@given(
    event_id=st.text(min_size=1, max_size=20),
    succeeded=st.booleans(),
    amount=st.integers(-(10**12), 10**12),
    seconds=st.integers(0, 4 * 10**9),
    offset_minutes=st.integers(-12 * 60, 14 * 60),
    key=st.text(min_size=1, max_size=40),
)
def test_parse_webhook_reads_back_what_event_to_body_wrote(
    event_id: str, succeeded: bool, amount: int, seconds: int, offset_minutes: int, key: str
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    event = GatewayEvent(
        event_id=event_id,
        type="refund.succeeded" if succeeded else "refund.failed",
        gateway_refund_id="re_1",
        idempotency_key=key,
        amount=amount,
        currency="EUR",
        code=None if succeeded else "card_closed",
        occurred_at=datetime(1970, 1, 1, tzinfo=UTC).astimezone(zone) + timedelta(seconds=seconds),
    )
    # Ids are read as the store holds them: control characters or surrogates are refused,
    # naming the field (a NUL would fail PostgreSQL's insert and the gateway would resend).
    bad = [
        field
        for field, value in (("id", event_id), ("data.object.idempotency_key", key))
        if text_problem(value, max_length=200) is not None
    ]
    if bad:
        with pytest.raises(WebhookRejected) as err:
            parse_webhook(event_to_body(event))
        assert err.value.field == bad[0]
    else:
        assert parse_webhook(event_to_body(event)) == event


def _with(path: list[str], value: object) -> bytes:
    doc = json.loads(event_to_body(EVENT))
    target = doc
    for step in path[:-1]:
        target = target[step]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_with(["data", "object", "amount"], 496.2), "data.object.amount"),
        (_with(["data", "object", "amount"], "49620"), "data.object.amount"),
        (_with(["data", "object", "amount"], True), "data.object.amount"),
        (_with(["type"], "refund.updated"), "type"),
        (_with(["created"], "2024-06-01T10:02:00"), "created"),
        (_with(["created"], "yesterday"), "created"),
        (_with(["id"], ""), "id"),
        (_with(["data", "object", "idempotency_key"], _DROP), "data.object.idempotency_key"),
        (_with(["data", "object", "failure_code"], None), "data.object"),
        (_with(["data"], []), "data.object"),
        # As the store holds them: a NUL would fail PostgreSQL's insert, and be resent.
        (_with(["id"], "evt\x00"), "id"),
        (_with(["data", "object", "id"], "r" * 101), "data.object.id"),
        (_with(["data", "object", "failure_code"], "card\ud800"), "data.object.failure_code"),
    ],
)
def test_parse_webhook_rejects_bad_bodies_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(WebhookRejected) as err:
        parse_webhook(body)
    assert (err.value.code, err.value.field) == ("gateway.webhook_invalid", field)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"amount": NaN}', b"\xff"])
def test_parse_webhook_rejects_what_is_not_a_json_object(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as err:
        parse_webhook(body)
    assert err.value.code == "gateway.webhook_invalid"


def test_events_refuse_floats_and_naive_times() -> None:
    with pytest.raises(TypeError):
        GatewayEvent("e", "refund.succeeded", "re", "k", 1.0, "EUR", None, EVENT.occurred_at)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        GatewayEvent("e", "refund.succeeded", "re", "k", 1, "EUR", None, datetime(2024, 6, 1))


def test_answer_from_wire_reads_refund_objects_and_errors() -> None:
    refund: dict[str, object] = {
        "object": "refund",
        "id": "re_9",
        "status": "succeeded",
        "failure_code": None,
    }
    assert answer_from_wire(refund) == GatewayAnswer(
        "succeeded", "re_9", None, "refund re_9 succeeded", raw=refund
    )
    error: dict[str, object] = {
        "error": {"type": "refund_error", "code": "card_blocked", "message": "no"}
    }
    assert answer_from_wire(error) == GatewayAnswer(
        "refused", None, "card_blocked", "no", raw=error
    )


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"object": "charge", "id": "ch_1"},
        {"object": "refund", "id": "re_1", "status": "canceled"},
        {"object": "refund", "status": "pending"},
        {"error": {"message": "no code"}},
    ],
)
def test_answer_from_wire_refuses_what_it_does_not_understand(body: object) -> None:
    with pytest.raises(GatewayProtocolError) as err:
        answer_from_wire(body)
    assert err.value.code == "gateway.protocol"


def test_answers_refuse_unknown_statuses() -> None:
    with pytest.raises(ValueError):
        GatewayAnswer("pending", None, None, "")  # type: ignore[arg-type]
