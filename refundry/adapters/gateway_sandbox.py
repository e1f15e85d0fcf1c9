"""SandboxGateway: an in-process payment gateway that fails the way real ones do, on purpose.

It keeps captured transactions and the refunds against them, honours idempotency keys, answers
``"accepted"`` and settles each refund ``confirm_after`` later, when its webhook event becomes
due. Knobs make it time out (before or after recording the refund), deliver events twice and
out of order. Everything random comes from two generators seeded from ``seed``: one for call
faults, one for webhooks, so changing one knob does not reshuffle the other. Runs are
reproducible for a given sequence of calls; with several threads the sequence is theirs.

Card states of a capture:
    open     refunds settle as refund.succeeded
    closed   refunds are accepted, then settle as refund.failed / card_closed (as card networks
             do: the issuer refuses days later)
    blocked  refunds are refused at once with card_blocked
"""

from __future__ import annotations

import bisect
import copy
import heapq
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from refundry.adapters.clock import ManualClock
from refundry.adapters.errors import (
    GatewayIdempotencyConflict,
    GatewayTimeout,
    GatewayUnavailable,
)
from refundry.adapters.event_queue import Delivery, WebhookQueue
from refundry.adapters.gateway import (
    GatewayAnswer,
    GatewayEvent,
    Json,
    RefundStatus,
    answer_from_wire,
    error_object,
    refund_object,
)
from refundry.adapters.sandbox_records import (
    CardState,
    Fault,
    Outcome,
    SandboxLedger,
    SandboxRefund,
    SeenRequest,
)

__all__ = [
    "CardState",
    "Fault",
    "ManualClock",
    "SandboxGateway",
    "SandboxLedger",
    "SandboxRefund",
    "SeenRequest",
]

MAX_KEY_LENGTH = 255


@dataclass(slots=True)
class _Capture:
    amount: int
    currency: str
    card_state: CardState


@dataclass(slots=True)
class _Refund:
    refund_id: str
    key: str
    transaction_id: str
    amount: int
    currency: str
    created_at: datetime
    settles_at: datetime
    status: RefundStatus = "pending"
    failure_code: str | None = None

    def wire(self) -> Json:
        return refund_object(
            refund_id=self.refund_id,
            status=self.status,
            transaction_id=self.transaction_id,
            amount=self.amount,
            currency=self.currency,
            idempotency_key=self.key,
            created=self.created_at,
            failure_code=self.failure_code,
        )


@dataclass(slots=True)
class _KeyRecord:
    params: tuple[str, int, str]
    refund_id: str | None  # set when a refund object was created
    refusal: Json | None  # set when refused at once: replayed as is


class SandboxGateway(WebhookQueue[GatewayEvent]):
    """An in-process ``PaymentGateway``; see the module docstring for its behaviour."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        seed: int = 0,
        timeout_rate: float = 0.0,
        accept_then_time_out: float = 0.0,
        duplicate_webhook_rate: float = 0.0,
        reorder_webhooks: bool = False,
        confirm_after: timedelta = timedelta(seconds=5),
    ) -> None:
        """``timeout_rate``, ``accept_then_time_out`` and ``duplicate_webhook_rate`` are
        probabilities per call (per event for duplicates). ``confirm_after`` of zero settles
        refunds during the call, so the answer is already ``succeeded`` or ``refused``."""
        for name, rate in (
            ("timeout_rate", timeout_rate),
            ("accept_then_time_out", accept_then_time_out),
            ("duplicate_webhook_rate", duplicate_webhook_rate),
        ):
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be within [0, 1], got {rate!r}")
        if timeout_rate + accept_then_time_out > 1:
            raise ValueError("timeout_rate + accept_then_time_out must not exceed 1")
        if confirm_after < timedelta(0):
            raise ValueError("confirm_after must not be negative")
        self._clock = clock
        self._timeout_rate = timeout_rate
        self._accept_then_time_out = accept_then_time_out
        self._duplicate_rate = duplicate_webhook_rate
        self._reorder = reorder_webhooks
        self._confirm_after = confirm_after
        self._fault_rng = random.Random(f"{seed}:faults")
        self._webhook_rng = random.Random(f"{seed}:webhooks")
        self._lock = threading.Lock()
        self._captures: dict[str, _Capture] = {}
        self._refunds: dict[str, _Refund] = {}
        self._by_transaction: dict[str, list[_Refund]] = {}  # a refusal's sum, without a scan
        self._keys: dict[str, _KeyRecord] = {}
        self._unsettled: list[tuple[datetime, int, str]] = []  # heap
        self._deliveries: list[Delivery[GatewayEvent]] = []  # sorted: the delivery order
        self._requests: list[SeenRequest] = []
        self._injected: list[Fault] = []
        self._refund_no = 0
        self._event_no = 0
        self._seq = 0  # delivery order; also breaks ties between refunds settling together

    def __repr__(self) -> str:
        return (
            f"SandboxGateway(timeout_rate={self._timeout_rate}, "
            f"accept_then_time_out={self._accept_then_time_out}, "
            f"duplicate_webhook_rate={self._duplicate_rate}, "
            f"reorder_webhooks={self._reorder}, confirm_after={self._confirm_after})"
        )

    # -- set-up -------------------------------------------------------------------------

    def capture(
        self, transaction_id: str, amount: int, currency: str, *, card_state: CardState = "open"
    ) -> None:
        """Register a captured transaction that refunds may draw on."""
        if type(amount) is not int or amount <= 0:
            raise ValueError(f"captured amount must be a positive int, got {amount!r}")
        with self._lock:
            if transaction_id in self._captures:
                raise ValueError(f"transaction {transaction_id!r} is already captured")
            self._captures[transaction_id] = _Capture(amount, currency, card_state)

    def set_card_state(self, transaction_id: str, card_state: CardState) -> None:
        """The card changed (closed or blocked) after the capture; pending refunds feel it."""
        with self._lock:
            self._captures[transaction_id].card_state = card_state

    def inject(self, *faults: Fault) -> None:
        """Force the next refund calls to fail like this, one fault per call, before the rates."""
        with self._lock:
            self._injected.extend(faults)

    # -- PaymentGateway -----------------------------------------------------------------

    def refund(
        self, *, idempotency_key: str, transaction_id: str, amount: int, currency: str
    ) -> GatewayAnswer:
        if type(amount) is not int:
            raise TypeError(f"amount must be int minor units, got {amount!r}")
        if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
            raise ValueError(f"idempotency_key must be 1..{MAX_KEY_LENGTH} characters")
        with self._lock:
            now = self.now()
            self._settle(now)
            fault = self._next_fault()
            if fault == "timeout":
                raise GatewayTimeout("sandbox: the request timed out before reaching the gateway")
            if fault == "unavailable":
                raise GatewayUnavailable("sandbox: connection refused")
            answer = self._refund(now, idempotency_key, (transaction_id, amount, currency))
            if fault == "accept_then_time_out":
                raise GatewayTimeout("sandbox: the gateway took the request, the answer was lost")
            return answer

    def lookup(self, *, idempotency_key: str) -> GatewayAnswer | None:
        with self._lock:
            self._settle(self.now())
            record = self._keys.get(idempotency_key)
            return None if record is None else self._answer(record)

    # -- webhooks -----------------------------------------------------------------------

    def pending_webhooks(self) -> tuple[GatewayEvent, ...]:
        """Due deliveries, in the order ``deliver`` will hand them out (duplicates included)."""
        return self._due()

    # -- for tests ----------------------------------------------------------------------

    @property
    def ledger(self) -> SandboxLedger:
        with self._lock:
            self._settle(self.now())
            refunds = tuple(
                SandboxRefund(
                    gateway_refund_id=r.refund_id,
                    idempotency_key=r.key,
                    transaction_id=r.transaction_id,
                    amount=r.amount,
                    currency=r.currency,
                    status=r.status,
                    failure_code=r.failure_code,
                    created_at=r.created_at,
                    settles_at=r.settles_at,
                )
                for r in self._refunds.values()
            )
            return SandboxLedger(
                captured={tx: c.amount for tx, c in self._captures.items()},
                refunded=self._sums("succeeded"),
                pending=self._sums("pending"),
                refunds=refunds,
                requests=tuple(self._requests),
            )

    # -- inside the lock ----------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        if self._injected:
            return self._injected.pop(0)
        if self._timeout_rate == 0 and self._accept_then_time_out == 0:
            return None
        draw = self._fault_rng.random()
        if draw < self._timeout_rate:
            return "timeout"
        if draw < self._timeout_rate + self._accept_then_time_out:
            return "accept_then_time_out"
        return None

    def _refund(self, now: datetime, key: str, params: tuple[str, int, str]) -> GatewayAnswer:
        transaction_id, amount, currency = params
        known = self._keys.get(key)
        if known is not None:
            if known.params != params:
                self._seen(now, key, params, "conflict", None, "idempotency_key_reused")
                raise GatewayIdempotencyConflict(
                    f"idempotency key {key!r} was used with other parameters {known.params!r}"
                )
            answer = self._answer(known)
            self._seen(now, key, params, "replayed", answer.gateway_refund_id, answer.code)
            return answer
        refusal = self._refusal(transaction_id, amount, currency)
        if refusal is not None:
            code, message = refusal
            self._keys[key] = _KeyRecord(params, None, error_object(code=code, message=message))
            self._seen(now, key, params, "refused", None, code)
            return self._answer(self._keys[key])
        self._seq += 1
        self._refund_no += 1
        refund = _Refund(
            refund_id=f"re_{self._refund_no:06d}",
            key=key,
            transaction_id=transaction_id,
            amount=amount,
            currency=currency,
            created_at=now,
            settles_at=now + self._confirm_after,
        )
        self._refunds[refund.refund_id] = refund
        self._by_transaction.setdefault(transaction_id, []).append(refund)
        self._keys[key] = _KeyRecord(params, refund.refund_id, None)
        heapq.heappush(self._unsettled, (refund.settles_at, self._seq, refund.refund_id))
        self._seen(now, key, params, "created", refund.refund_id, None)
        self._settle(now)
        return self._answer(self._keys[key])

    def _refusal(self, transaction_id: str, amount: int, currency: str) -> tuple[str, str] | None:
        capture = self._captures.get(transaction_id)
        if amount <= 0:
            return "amount_invalid", f"amount must be positive, got {amount}"
        if capture is None:
            return "transaction_unknown", f"no captured transaction {transaction_id!r}"
        if currency != capture.currency:
            return "currency_mismatch", f"transaction is in {capture.currency}, not {currency}"
        if capture.card_state == "blocked":
            return "card_blocked", "the issuer blocks refunds to this card"
        committed = sum(
            r.amount for r in self._by_transaction.get(transaction_id, ()) if r.status != "failed"
        )
        if committed + amount > capture.amount:
            return (
                "amount_exceeds_captured",
                f"{amount} asked, {capture.amount - committed} of {capture.amount} left",
            )
        return None

    def _settle(self, now: datetime) -> None:
        while self._unsettled and self._unsettled[0][0] <= now:
            _, _, refund_id = heapq.heappop(self._unsettled)
            refund = self._refunds[refund_id]
            state = self._captures[refund.transaction_id].card_state
            if state == "open":
                refund.status = "succeeded"
            else:
                refund.status, refund.failure_code = "failed", f"card_{state}"
            self._event_no += 1
            event = GatewayEvent(
                event_id=f"evt_{self._event_no:06d}",
                type="refund.succeeded" if refund.status == "succeeded" else "refund.failed",
                gateway_refund_id=refund.refund_id,
                idempotency_key=refund.key,
                amount=refund.amount,
                currency=refund.currency,
                code=refund.failure_code,
                occurred_at=refund.settles_at,
            )
            copies = 2 if self._webhook_rng.random() < self._duplicate_rate else 1
            for _ in range(copies):
                self._seq += 1
                rank = self._webhook_rng.randrange(1 << 32) if self._reorder else 0
                bisect.insort(self._deliveries, Delivery(rank, self._seq, event))

    def _answer(self, record: _KeyRecord) -> GatewayAnswer:
        if record.refund_id is not None:
            return answer_from_wire(self._refunds[record.refund_id].wire())
        assert record.refusal is not None
        return answer_from_wire(copy.deepcopy(record.refusal))

    def _seen(
        self,
        now: datetime,
        key: str,
        params: tuple[str, int, str],
        outcome: Outcome,
        refund_id: str | None,
        code: str | None,
    ) -> None:
        transaction_id, amount, currency = params
        self._requests.append(
            SeenRequest(key, transaction_id, amount, currency, now, outcome, refund_id, code)
        )

    def _sums(self, status: RefundStatus) -> dict[str, int]:
        sums = dict.fromkeys(self._captures, 0)
        for r in self._refunds.values():
            if r.status == status:
                sums[r.transaction_id] = sums.get(r.transaction_id, 0) + r.amount
        return sums
