"""Webhook signatures: good ones pass, bad, missing and stale ones are rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from refundry.adapters.errors import WebhookRejected
from refundry.adapters.gateway import event_to_body
from refundry.adapters.webhook_signing import receive_webhook, sign_webhook, verify_webhook

from .test_gateway_wire import EVENT

SECRET = "whsec_test_1"
SENT = datetime(2024, 6, 1, 10, 2, 30, tzinfo=UTC)
BODY = event_to_body(EVENT)


def test_signature_header_is_timestamp_and_hmac_sha256_hex() -> None:
    assert sign_webhook(SECRET, SENT, b"{}") == (
        "t=1717236150,v1=1ca4e28e7713917239a0af1299efca8c99c693ca6ac4b619396fe2d19ace64c4"
    )


def test_a_good_signature_passes_within_the_tolerance() -> None:
    header = sign_webhook(SECRET, SENT, BODY)
    for late in (timedelta(0), timedelta(minutes=5), -timedelta(minutes=5)):
        assert verify_webhook(SECRET, header, BODY, now=SENT + late) == SENT
    assert receive_webhook(SECRET.encode(), header, BODY, now=SENT) == EVENT


def test_any_matching_v1_passes_while_a_secret_is_rotated() -> None:
    good = sign_webhook(SECRET, SENT, BODY).split("v1=")[1]
    header = f"t=1717236150,v1={'0' * 64},v1={good}"
    assert verify_webhook(SECRET, header, BODY, now=SENT) == SENT


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, SENT, "signature header is missing"),
        ("", BODY, SENT, "signature header is missing"),
        ("v1=abc", BODY, SENT, "signature header needs t=<unix seconds> and v1=<hex>"),
        ("t=1717236150", BODY, SENT, "signature header needs t=<unix seconds> and v1=<hex>"),
        (sign_webhook("other", SENT, BODY), BODY, SENT, "signature does not match the body"),
        (sign_webhook(SECRET, SENT, BODY), BODY + b" ", SENT, "signature does not match the body"),
        (
            sign_webhook(SECRET, SENT, BODY).replace("t=1717236150", "t=1717236151"),
            BODY,
            SENT,
            "signature does not match the body",
        ),
        (
            sign_webhook(SECRET, SENT, BODY),
            BODY,
            SENT + timedelta(minutes=5, seconds=1),
            "signature time 2024-06-01T10:02:30+00:00 is outside the tolerance",
        ),
        (
            sign_webhook(SECRET, SENT, BODY),
            BODY,
            SENT - timedelta(minutes=5, seconds=1),
            "signature time 2024-06-01T10:02:30+00:00 is outside the tolerance",
        ),
    ],
)
def test_bad_missing_or_stale_signatures_are_rejected(
    header: str | None, body: bytes, now: datetime, reason: str
) -> None:
    with pytest.raises(WebhookRejected) as err:
        verify_webhook(SECRET, header, body, now=now)
    assert (err.value.code, err.value.message) == ("gateway.webhook_signature", reason)


def test_a_stale_signature_passes_with_a_wider_tolerance() -> None:
    header = sign_webhook(SECRET, SENT, BODY)
    later = SENT + timedelta(hours=1)
    assert verify_webhook(SECRET, header, BODY, now=later, tolerance=timedelta(hours=1)) == SENT


def test_receive_checks_the_signature_before_reading_the_body() -> None:
    with pytest.raises(WebhookRejected) as err:
        receive_webhook(SECRET, "t=1,v1=00", b"not json", now=SENT)
    assert err.value.code == "gateway.webhook_signature"
