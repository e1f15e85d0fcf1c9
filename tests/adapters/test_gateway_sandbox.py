"""SandboxGateway's answers: idempotency, refusals, timeouts, the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest

from refundry.adapters.clock import ManualClock
from refundry.adapters.errors import (
    GatewayIdempotencyConflict,
    GatewayTimeout,
    GatewayUnavailable,
)
from refundry.adapters.gateway import GatewayAnswer, PaymentGateway
from refundry.adapters.gateway_sandbox import SandboxGateway

from .conftest import CONFIRM, START


def said(answer: GatewayAnswer) -> tuple[str, str | None, str | None, str]:
    return answer.status, answer.gateway_refund_id, answer.code, answer.message


def test_sandbox_implements_the_payment_gateway_protocol(sandbox: SandboxGateway) -> None:
    assert isinstance(sandbox, PaymentGateway)


def test_refund_is_accepted_then_succeeds_after_confirm_after(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    answer = sandbox.refund(
        idempotency_key="out-1", transaction_id="ch_open", amount=12345, currency="EUR"
    )
    assert said(answer) == ("accepted", "re_000001", None, "refund re_000001 pending")
    assert answer.raw == {
        "object": "refund",
        "id": "re_000001",
        "status": "pending",
        "charge": "ch_open",
        "amount": 12345,
        "currency": "EUR",
        "idempotency_key": "out-1",
        "failure_code": None,
        "created": "2024-06-01T10:00:00+00:00",
    }
    assert sandbox.ledger.pending == {"ch_open": 12345, "ch_closed": 0, "ch_blocked": 0}

    clock.advance(CONFIRM - timedelta(microseconds=1))
    assert sandbox.lookup(idempotency_key="out-1").status == "accepted"  # type: ignore[union-attr]
    clock.advance(timedelta(microseconds=1))
    settled = sandbox.lookup(idempotency_key="out-1")
    assert settled is not None
    assert (settled.status, settled.gateway_refund_id, settled.code) == (
        "succeeded",
        "re_000001",
        None,
    )
    assert sandbox.ledger.refunded["ch_open"] == 12345
    assert sandbox.ledger.pending["ch_open"] == 0


def test_retry_with_the_same_key_returns_the_same_refund_and_moves_money_once(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    first = sandbox.refund(
        idempotency_key="out-1", transaction_id="ch_open", amount=30000, currency="EUR"
    )
    again = sandbox.refund(
        idempotency_key="out-1", transaction_id="ch_open", amount=30000, currency="EUR"
    )
    assert again == first
    clock.advance(CONFIRM)
    late = sandbox.refund(
        idempotency_key="out-1", transaction_id="ch_open", amount=30000, currency="EUR"
    )
    assert (late.status, late.gateway_refund_id) == ("succeeded", "re_000001")

    ledger = sandbox.ledger
    assert [r.gateway_refund_id for r in ledger.refunds] == ["re_000001"]
    assert ledger.refunded["ch_open"] == 30000
    assert [(s.outcome, s.gateway_refund_id) for s in ledger.requests] == [
        ("created", "re_000001"),
        ("replayed", "re_000001"),
        ("replayed", "re_000001"),
    ]


def test_the_same_key_with_other_parameters_is_a_conflict_and_moves_nothing(
    sandbox: SandboxGateway,
) -> None:
    sandbox.refund(idempotency_key="out-1", transaction_id="ch_open", amount=100, currency="EUR")
    with pytest.raises(GatewayIdempotencyConflict) as err:
        sandbox.refund(
            idempotency_key="out-1", transaction_id="ch_open", amount=200, currency="EUR"
        )
    assert err.value.code == "gateway.idempotency_conflict"
    ledger = sandbox.ledger
    assert [r.amount for r in ledger.refunds] == [100]
    assert [s.outcome for s in ledger.requests] == ["created", "conflict"]


def test_refunds_beyond_the_captured_amount_are_refused(sandbox: SandboxGateway) -> None:
    sandbox.refund(idempotency_key="a", transaction_id="ch_open", amount=30000, currency="EUR")
    over = sandbox.refund(
        idempotency_key="b", transaction_id="ch_open", amount=20001, currency="EUR"
    )
    assert said(over) == (
        "refused",
        None,
        "amount_exceeds_captured",
        "20001 asked, 20000 of 50000 left",
    )
    assert over.raw == {
        "error": {
            "type": "refund_error",
            "code": "amount_exceeds_captured",
            "message": "20001 asked, 20000 of 50000 left",
        }
    }
    exact = sandbox.refund(
        idempotency_key="c", transaction_id="ch_open", amount=20000, currency="EUR"
    )
    assert (exact.status, exact.gateway_refund_id) == ("accepted", "re_000002")
    assert sandbox.ledger.pending["ch_open"] == 50000


def test_a_refusal_is_replayed_under_its_key_even_when_room_appears_later(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    sandbox.refund(idempotency_key="a", transaction_id="ch_closed", amount=20000, currency="EUR")
    refused = sandbox.refund(
        idempotency_key="b", transaction_id="ch_closed", amount=1, currency="EUR"
    )
    assert refused.code == "amount_exceeds_captured"
    clock.advance(CONFIRM)  # "a" fails (closed card): the 20000 are free again
    assert (
        sandbox.refund(idempotency_key="b", transaction_id="ch_closed", amount=1, currency="EUR")
        == refused
    )
    assert sandbox.lookup(idempotency_key="b") == refused
    fresh = sandbox.refund(
        idempotency_key="c", transaction_id="ch_closed", amount=1, currency="EUR"
    )
    assert (fresh.status, fresh.gateway_refund_id) == ("accepted", "re_000002")


@pytest.mark.parametrize(
    ("transaction_id", "amount", "currency", "code"),
    [
        ("ch_nope", 100, "EUR", "transaction_unknown"),
        ("ch_blocked", 100, "EUR", "card_blocked"),
        ("ch_open", 100, "USD", "currency_mismatch"),
        ("ch_open", 0, "EUR", "amount_invalid"),
        ("ch_open", -5, "EUR", "amount_invalid"),
    ],
)
def test_synchronous_refusals_carry_the_gateway_code_and_move_nothing(
    sandbox: SandboxGateway, transaction_id: str, amount: int, currency: str, code: str
) -> None:
    answer = sandbox.refund(
        idempotency_key="k", transaction_id=transaction_id, amount=amount, currency=currency
    )
    assert (answer.status, answer.gateway_refund_id, answer.code) == ("refused", None, code)
    assert answer.is_final is True
    ledger = sandbox.ledger
    assert ledger.refunds == ()
    assert [(s.outcome, s.code) for s in ledger.requests] == [("refused", code)]


def test_closed_card_is_accepted_then_fails_and_frees_the_amount(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    answer = sandbox.refund(
        idempotency_key="k", transaction_id="ch_closed", amount=20000, currency="EUR"
    )
    assert (answer.status, answer.code) == ("accepted", None)
    clock.advance(CONFIRM)
    looked = sandbox.lookup(idempotency_key="k")
    assert looked is not None
    assert (looked.status, looked.gateway_refund_id, looked.code) == (
        "refused",
        "re_000001",
        "card_closed",
    )
    ledger = sandbox.ledger
    assert (ledger.refunded["ch_closed"], ledger.pending["ch_closed"]) == (0, 0)
    assert ledger.refunds[0].status == "failed"


def test_a_card_closed_after_acceptance_fails_at_settlement(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    sandbox.refund(idempotency_key="k", transaction_id="ch_open", amount=500, currency="EUR")
    sandbox.set_card_state("ch_open", "closed")
    clock.advance(CONFIRM)
    assert sandbox.lookup(idempotency_key="k").code == "card_closed"  # type: ignore[union-attr]


def test_confirm_after_zero_answers_the_final_outcome_at_once(clock: ManualClock) -> None:
    gateway = SandboxGateway(clock=clock, confirm_after=timedelta(0))
    gateway.capture("ch_open", 1000, "CNY")
    gateway.capture("ch_closed", 1000, "CNY", card_state="closed")
    ok = gateway.refund(idempotency_key="a", transaction_id="ch_open", amount=1000, currency="CNY")
    ko = gateway.refund(
        idempotency_key="b", transaction_id="ch_closed", amount=1000, currency="CNY"
    )
    assert (ok.status, ok.code) == ("succeeded", None)
    assert (ko.status, ko.gateway_refund_id, ko.code) == ("refused", "re_000002", "card_closed")
    assert [e.type for e in gateway.pending_webhooks()] == ["refund.succeeded", "refund.failed"]


def test_lookup_of_an_unknown_key_is_none(sandbox: SandboxGateway) -> None:
    assert sandbox.lookup(idempotency_key="never-sent") is None


def test_a_timeout_before_the_gateway_records_nothing(sandbox: SandboxGateway) -> None:
    sandbox.inject("timeout")
    with pytest.raises(GatewayTimeout) as err:
        sandbox.refund(idempotency_key="k", transaction_id="ch_open", amount=700, currency="EUR")
    assert err.value.code == "gateway.timeout"
    assert sandbox.lookup(idempotency_key="k") is None
    assert sandbox.ledger.requests == ()
    retry = sandbox.refund(
        idempotency_key="k", transaction_id="ch_open", amount=700, currency="EUR"
    )
    assert (retry.status, retry.gateway_refund_id) == ("accepted", "re_000001")


def test_accept_then_time_out_is_resolved_by_lookup_and_a_retry_moves_nothing_more(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    sandbox.inject("accept_then_time_out")
    with pytest.raises(GatewayTimeout):
        sandbox.refund(idempotency_key="k", transaction_id="ch_open", amount=700, currency="EUR")
    found = sandbox.lookup(idempotency_key="k")
    assert found is not None
    assert (found.status, found.gateway_refund_id) == ("accepted", "re_000001")
    retry = sandbox.refund(
        idempotency_key="k", transaction_id="ch_open", amount=700, currency="EUR"
    )
    assert retry.gateway_refund_id == "re_000001"
    clock.advance(CONFIRM)
    ledger = sandbox.ledger
    assert ledger.refunded["ch_open"] == 700
    assert [s.outcome for s in ledger.requests] == ["created", "replayed"]


def test_unavailable_records_nothing(sandbox: SandboxGateway) -> None:
    sandbox.inject("unavailable")
    with pytest.raises(GatewayUnavailable):
        sandbox.refund(idempotency_key="k", transaction_id="ch_open", amount=1, currency="EUR")
    assert sandbox.ledger.requests == ()


def test_timeout_rates_are_seeded_and_reproducible(clock: ManualClock) -> None:
    def run() -> list[str]:
        gateway = SandboxGateway(clock=clock, seed=7, timeout_rate=0.3, accept_then_time_out=0.2)
        gateway.capture("ch", 10000, "EUR")
        seen: list[str] = []
        for i in range(10):
            try:
                key = f"k{i}"
                seen.append(
                    gateway.refund(
                        idempotency_key=key, transaction_id="ch", amount=100, currency="EUR"
                    ).status
                )
            except GatewayTimeout:
                seen.append("lost" if gateway.lookup(idempotency_key=key) is None else "recorded")
        return seen

    first = run()
    assert first == run()
    assert first == [
        "lost", "lost", "accepted", "lost", "recorded",
        "accepted", "lost", "lost", "lost", "recorded",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "knobs",
    [
        {"timeout_rate": 1.5},
        {"duplicate_webhook_rate": -0.1},
        {"timeout_rate": 0.6, "accept_then_time_out": 0.5},
        {"confirm_after": timedelta(seconds=-1)},
    ],
)
def test_nonsensical_knobs_are_refused(clock: ManualClock, knobs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SandboxGateway(clock=clock, **knobs)  # type: ignore[arg-type]


def test_programming_errors_raise_instead_of_answering(sandbox: SandboxGateway) -> None:
    with pytest.raises(TypeError):
        sandbox.refund(idempotency_key="k", transaction_id="ch_open", amount=1.5, currency="EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sandbox.refund(idempotency_key="", transaction_id="ch_open", amount=1, currency="EUR")
    with pytest.raises(ValueError):
        sandbox.capture("ch_open", 100, "EUR")
    assert sandbox.ledger.requests == ()


def test_refunds_keep_their_creation_and_settlement_times(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    clock.advance(timedelta(seconds=30))
    sandbox.refund(idempotency_key="k", transaction_id="ch_open", amount=1, currency="EUR")
    (refund,) = sandbox.ledger.refunds
    assert (refund.created_at, refund.settles_at) == (
        START + timedelta(seconds=30),
        START + timedelta(seconds=30) + CONFIRM,
    )


def test_answers_are_copies_that_callers_may_keep_or_change(sandbox: SandboxGateway) -> None:
    refused = sandbox.refund(idempotency_key="k", transaction_id="ch_x", amount=1, currency="EUR")
    refused.raw["error"] = "scribbled"
    again = sandbox.lookup(idempotency_key="k")
    assert again is not None
    assert again.raw == {
        "error": {
            "type": "refund_error",
            "code": "transaction_unknown",
            "message": "no captured transaction 'ch_x'",
        }
    }
