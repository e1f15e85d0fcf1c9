"""Many outbox workers at once: the sandbox never refunds more than was captured, or twice."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway import GatewayAnswer
from refundry.adapters.gateway_sandbox import SandboxGateway

from .conftest import CONFIRM


def test_many_threads_with_different_keys_never_exceed_the_captured_amount(
    clock: ManualClock,
) -> None:
    gateway = SandboxGateway(clock=clock, confirm_after=CONFIRM)
    gateway.capture("ch", 10000, "EUR")
    start = threading.Barrier(40)

    def one(i: int) -> GatewayAnswer:
        start.wait()
        return gateway.refund(
            idempotency_key=f"k{i}", transaction_id="ch", amount=700, currency="EUR"
        )

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(one, range(40)))
    assert Counter(a.status for a in answers) == {"accepted": 14, "refused": 26}
    assert {a.code for a in answers if a.status == "refused"} == {"amount_exceeds_captured"}
    clock.advance(CONFIRM)
    ledger = gateway.ledger
    assert ledger.refunded["ch"] == 9800
    assert len(ledger.refunds) == 14
    assert len(ledger.requests) == 40


def test_many_threads_retrying_one_key_create_one_refund(clock: ManualClock) -> None:
    gateway = SandboxGateway(clock=clock, confirm_after=CONFIRM)
    gateway.capture("ch", 10000, "EUR")
    start = threading.Barrier(30)

    def one(_: int) -> str | None:
        start.wait()
        answer = gateway.refund(
            idempotency_key="same", transaction_id="ch", amount=2500, currency="EUR"
        )
        return answer.gateway_refund_id

    with ThreadPoolExecutor(max_workers=30) as pool:
        ids = set(pool.map(one, range(30)))
    assert ids == {"re_000001"}
    ledger = gateway.ledger
    assert Counter(s.outcome for s in ledger.requests) == {"created": 1, "replayed": 29}
    assert ledger.pending["ch"] == 2500
