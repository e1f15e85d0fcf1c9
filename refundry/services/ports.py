"""What the services need from the outside world. Adapters implement these.

The payment gateway's port is ``refundry.adapters.gateway.PaymentGateway`` (re-exported here).
Every receiver is idempotent on ``key`` (the outbox row's key): the relay delivers at least
once, and a crash between delivering and recording it may deliver a message again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from refundry.adapters.gateway import GatewayAnswer, GatewayEvent, PaymentGateway

__all__ = [
    "EmailSender",
    "EventPublisher",
    "GatewayAnswer",
    "GatewayEvent",
    "LogisticsProvider",
    "Notifier",
    "PaymentGateway",
    "ReturnBooking",
    "SmsSender",
]


class Notifier(Protocol):
    def send(self, message: dict[str, Any], *, key: str) -> None:
        """Deliver a customer notification (template, params, locale, customer); a second
        call with the same key must not reach the customer twice."""
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


@dataclass(frozen=True, slots=True)
class ReturnBooking:
    """What the logistics provider booked for a return."""

    carrier: str
    service: str  # prepaid_label | pickup
    tracking_number: str
    cost: int  # minor units, what the carrier charges the shop
    label: dict[str, Any] = field(default_factory=dict)  # label URL / code, or pickup slot


class LogisticsProvider(Protocol):
    def book_return(
        self, *, rma: str, service: str, from_address: str, to_address: str, key: str
    ) -> ReturnBooking:
        """Book a prepaid label or a pickup for a return; the same key books once."""
        ...
