"""What the sandbox gateway records and shows to tests: refunds, requests, the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from refundry.adapters.gateway import RefundStatus

__all__ = [
    "CardState",
    "Fault",
    "Outcome",
    "SandboxLedger",
    "SandboxRefund",
    "SeenRequest",
]

CardState = Literal["open", "closed", "blocked"]
Fault = Literal[
    "timeout",  # lost on the way: the gateway never saw the request
    "accept_then_time_out",  # the gateway recorded the refund, the answer was lost
    "unavailable",  # the connection failed: the gateway never saw the request
]
Outcome = Literal[
    "created",  # a new refund object
    "replayed",  # the key was known: same refund (or same refusal), nothing moved
    "refused",  # refused at once, no refund object
    "conflict",  # the key was known with other parameters
]


@dataclass(frozen=True, slots=True)
class SandboxRefund:
    """A refund object as the sandbox holds it."""

    gateway_refund_id: str
    idempotency_key: str
    transaction_id: str
    amount: int
    currency: str
    status: RefundStatus
    failure_code: str | None
    created_at: datetime
    settles_at: datetime


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One refund call that reached the gateway (calls lost on the way are not seen)."""

    idempotency_key: str
    transaction_id: str
    amount: int
    currency: str
    received_at: datetime
    outcome: Outcome
    gateway_refund_id: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class SandboxLedger:
    """A consistent snapshot of the sandbox, for assertions."""

    captured: Mapping[str, int]  # per transaction
    refunded: Mapping[str, int]  # succeeded refunds per transaction: money that left
    pending: Mapping[str, int]  # accepted, not yet settled, per transaction
    refunds: tuple[SandboxRefund, ...]  # every refund object, in creation order
    requests: tuple[SeenRequest, ...]  # every call that reached the gateway, in order

    def refunds_of(self, transaction_id: str) -> tuple[SandboxRefund, ...]:
        return tuple(r for r in self.refunds if r.transaction_id == transaction_id)
