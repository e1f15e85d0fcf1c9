"""What the services need from the outside world. Adapters implement these.

The payment gateway's and the logistics provider's ports live with their adapters
(``refundry.adapters.gateway``, ``refundry.adapters.logistics``) and are re-exported here.
Every receiver is idempotent on ``key`` (the outbox row's key): the relay delivers at least
once, and a crash between delivering and recording it may deliver a message again.
"""

from __future__ import annotations

from typing import Any, Protocol

from refundry.adapters.gateway import GatewayAnswer, GatewayEvent, PaymentGateway
from refundry.adapters.logistics import LogisticsProvider, ReturnBooking

__all__ = [
    "EmailSender",
    "EventPublisher",
    "GatewayAnswer",
    "GatewayEvent",
    "LogisticsProvider",
    "Notifier",
    "PaymentGateway",
    "PhotoStorage",
    "ReturnBooking",
    "SmsSender",
]


class Notifier(Protocol):
    def send(self, message: dict[str, Any], *, key: str) -> None:
        """Deliver a customer notification (template, params, locale, customer); a second
        call with the same key must not reach the customer twice."""
        ...

    def send_many(self, messages: list[tuple[dict[str, Any], str]]) -> dict[str, Exception]:
        """``send`` for each (message, key) — the relay's round of one customer's messages —
        with what failed returned by key instead of raised (an exception raised: all of them
        are tried again)."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: dict[str, Any], *, key: str) -> None:
        """Publish a domain event; consumers deduplicate on ``key``."""
        ...


class SmsSender(Protocol):
    def send(self, *, phone: str, text: str, key: str) -> None:
        """Send one SMS; the same key must not reach the phone twice."""
        ...


class EmailSender(Protocol):
    def send(self, *, to: str, subject: str, body: str, key: str) -> None:
        """Send one email; ``key`` becomes its Message-ID so a resend is recognisably the same."""
        ...


class PhotoStorage(Protocol):
    """Where the bytes of the cases' photos live (adapters/photos.py), each under its
    content's SHA-256 in hex: the key is refundry's, never a name or path a user sent, and the
    same picture sent twice is stored once. The rows that say which case holds which photo
    are in the database (``photos``)."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; putting the same key again changes nothing."""
        ...

    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or None when there are none."""
        ...
