"""What the services need from the outside world. Adapters implement these.

The payment gateway's port is ``refundry.adapters.gateway.PaymentGateway`` (re-exported here).
Every receiver is idempotent on ``key`` (the outbox row's key): the relay delivers at least
once, and a crash between delivering and recording it may deliver a message again.
"""

from __future__ import annotations

from typing import Any, Protocol

from refundry.adapters.gateway import GatewayAnswer, GatewayEvent, PaymentGateway

__all__ = ["EventPublisher", "GatewayAnswer", "GatewayEvent", "Notifier", "PaymentGateway"]


class Notifier(Protocol):
    def send(self, message: dict[str, Any], *, key: str) -> None:
        """Deliver a customer notification (template, params, locale, customer); a second
        call with the same key must not reach the customer twice."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: dict[str, Any], *, key: str) -> None:
        """Publish a domain event; consumers deduplicate on ``key``."""
        ...
