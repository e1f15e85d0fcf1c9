"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``, as Stripe signs its webhooks.

The header reads ``Refundry-Signature: t=1718000000,v1=<hex>``; several ``v1`` entries may be
present while a secret is being rotated, and any one matching is enough. The timestamp is signed
with the body, so a captured webhook cannot be replayed once it is older than the tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from refundry.adapters.errors import WebhookRejected
from refundry.adapters.gateway import GatewayEvent, parse_webhook

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "receive_webhook",
    "sign_webhook",
    "verify_webhook",
]

SIGNATURE_HEADER = "Refundry-Signature"
DEFAULT_TOLERANCE = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIGNATURE_CODE = "gateway.webhook_signature"


def sign_webhook(secret: str | bytes, timestamp: datetime, body: bytes) -> str:
    """The ``Refundry-Signature`` header value for ``body`` sent at ``timestamp``."""
    seconds = _unix_seconds(timestamp)
    return f"t={seconds},v1={_digest(secret, seconds, body)}"


def verify_webhook(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> datetime:
    """Check a signature header; return the signed time, or raise ``WebhookRejected``.

    Rejects a missing or malformed header, a signature that does not match (compared in
    constant time), and a timestamp further than ``tolerance`` from ``now`` either way.
    """
    if not header:
        raise _rejected("signature header is missing")
    seconds: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit():
            seconds = int(value)
        elif key == "v1":
            candidates.append(value)
    if seconds is None or not candidates:
        raise _rejected("signature header needs t=<unix seconds> and v1=<hex>")
    expected = _digest(secret, seconds, body)
    # Look at every candidate, so the time taken does not say which one (or whether one) matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise _rejected("signature does not match the body")
    signed_at = _EPOCH + timedelta(seconds=seconds)
    if abs(_unix_seconds(now) - seconds) > tolerance // timedelta(seconds=1):
        raise _rejected(f"signature time {signed_at.isoformat()} is outside the tolerance")
    return signed_at


def receive_webhook(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> GatewayEvent:
    """Verify, then parse: what an HTTP endpoint receiving gateway webhooks should call."""
    verify_webhook(secret, header, body, now=now, tolerance=tolerance)
    return parse_webhook(body)


def _digest(secret: str | bytes, seconds: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, str(seconds).encode() + b"." + body, hashlib.sha256).hexdigest()


def _unix_seconds(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("webhook times must be timezone-aware")
    return (when - _EPOCH) // timedelta(seconds=1)


def _rejected(message: str) -> WebhookRejected:
    return WebhookRejected(message, code=_SIGNATURE_CODE)
