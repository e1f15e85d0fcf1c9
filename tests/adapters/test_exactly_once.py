"""The relay's retry discipline against a sandbox that times out: money moves exactly once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from refundry.adapters.clock import ManualClock
from refundry.adapters.errors import GatewayTimeout
from refundry.adapters.gateway import GatewayAnswer, PaymentGateway
from refundry.adapters.gateway_sandbox import SandboxGateway

from .conftest import CONFIRM, START


def pay_out(
    gateway: PaymentGateway, *, key: str, transaction_id: str, amount: int
) -> GatewayAnswer:
    """What the outbox relay will do: same key until an answer; lookup after a timeout."""
    for _ in range(100):
        try:
            return gateway.refund(
                idempotency_key=key, transaction_id=transaction_id, amount=amount, currency="EUR"
            )
        except GatewayTimeout:
            found = gateway.lookup(idempotency_key=key)
            if found is not None:
                return found
    raise AssertionError("never answered")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    timeout_rate=st.sampled_from([0.0, 0.3, 0.6]),
    accept_then_time_out=st.sampled_from([0.0, 0.2, 0.4]),
    amounts=st.lists(st.integers(1, 3000), min_size=1, max_size=12),
)
def test_retrying_with_the_same_key_moves_each_refund_exactly_once(
    seed: int, timeout_rate: float, accept_then_time_out: float, amounts: list[int]
) -> None:
    clock = ManualClock(START)
    gateway = SandboxGateway(
        clock=clock,
        seed=seed,
        timeout_rate=timeout_rate,
        accept_then_time_out=accept_then_time_out,
        confirm_after=CONFIRM,
    )
    gateway.capture("ch", 20000, "EUR")
    answers = [
        pay_out(gateway, key=f"out-{i}", transaction_id="ch", amount=amount)
        for i, amount in enumerate(amounts)
    ]
    clock.advance(CONFIRM)
    ledger = gateway.ledger
    accepted = [a for a, ans in zip(amounts, answers, strict=True) if ans.status == "accepted"]
    assert [r.idempotency_key for r in ledger.refunds] == [
        f"out-{i}" for i, ans in enumerate(answers) if ans.status == "accepted"
    ]
    assert ledger.refunded["ch"] == sum(accepted)
    # Refusals happen exactly where the running total would pass the capture.
    running = 0
    for amount, answer in zip(amounts, answers, strict=True):
        if running + amount <= 20000:
            running += amount
            assert answer.status == "accepted"
        else:
            assert answer.code == "amount_exceeds_captured"
