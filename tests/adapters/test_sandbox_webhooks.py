"""SandboxGateway's webhooks: due times, duplicates, out-of-order delivery, redelivery."""

from __future__ import annotations

from datetime import timedelta

import pytest

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway import GatewayEvent
from refundry.adapters.gateway_sandbox import SandboxGateway

from .conftest import CONFIRM, START


def five_refunds_a_second_apart(
    clock: ManualClock, *, duplicate_webhook_rate: float = 0.0, reorder_webhooks: bool = False
) -> SandboxGateway:
    gateway = SandboxGateway(
        clock=clock,
        seed=3,
        duplicate_webhook_rate=duplicate_webhook_rate,
        reorder_webhooks=reorder_webhooks,
        confirm_after=CONFIRM,
    )
    gateway.capture("ch", 10000, "EUR")
    for i in range(5):
        gateway.refund(idempotency_key=f"k{i}", transaction_id="ch", amount=1000, currency="EUR")
        clock.advance(timedelta(seconds=1))
    clock.advance(CONFIRM)
    return gateway


def keys(events: tuple[GatewayEvent, ...] | list[GatewayEvent]) -> list[str]:
    return [e.idempotency_key for e in events]


def test_no_webhook_before_confirm_after_then_one_per_refund_in_order(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    sandbox.refund(idempotency_key="a", transaction_id="ch_open", amount=100, currency="EUR")
    clock.advance(timedelta(seconds=10))
    sandbox.refund(idempotency_key="b", transaction_id="ch_closed", amount=200, currency="EUR")
    clock.advance(CONFIRM - timedelta(seconds=10, microseconds=1))
    assert sandbox.pending_webhooks() == ()
    clock.advance(timedelta(seconds=10, microseconds=1))

    got: list[GatewayEvent] = []
    assert sandbox.deliver_due(got.append) == 2
    assert got == [
        GatewayEvent(
            event_id="evt_000001",
            type="refund.succeeded",
            gateway_refund_id="re_000001",
            idempotency_key="a",
            amount=100,
            currency="EUR",
            code=None,
            occurred_at=START + CONFIRM,
        ),
        GatewayEvent(
            event_id="evt_000002",
            type="refund.failed",
            gateway_refund_id="re_000002",
            idempotency_key="b",
            amount=200,
            currency="EUR",
            code="card_closed",
            occurred_at=START + timedelta(seconds=10) + CONFIRM,
        ),
    ]
    assert sandbox.pending_webhooks() == ()
    assert sandbox.deliver_due(got.append) == 0


def test_well_behaved_knobs_deliver_each_event_once_in_time_order(clock: ManualClock) -> None:
    gateway = five_refunds_a_second_apart(clock)
    got: list[GatewayEvent] = []
    gateway.deliver_due(got.append)
    assert keys(got) == ["k0", "k1", "k2", "k3", "k4"]
    assert [e.event_id for e in got] == [f"evt_00000{n}" for n in range(1, 6)]


def test_duplicate_rate_delivers_some_events_twice_with_the_same_event_id(
    clock: ManualClock,
) -> None:
    gateway = five_refunds_a_second_apart(clock, duplicate_webhook_rate=0.5)
    got: list[GatewayEvent] = []
    assert gateway.deliver_due(got.append) == 8
    assert [e.event_id for e in got] == [
        "evt_000001", "evt_000002", "evt_000002", "evt_000003",
        "evt_000003", "evt_000004", "evt_000005", "evt_000005",
    ]  # fmt: skip
    assert got[1] == got[2]


def test_reorder_delivers_events_out_of_time_order(clock: ManualClock) -> None:
    gateway = five_refunds_a_second_apart(clock, reorder_webhooks=True)
    got: list[GatewayEvent] = []
    gateway.deliver_due(got.append)
    assert keys(got) == ["k0", "k1", "k3", "k2", "k4"]
    assert sorted(got, key=lambda e: e.occurred_at) != got


def test_duplicates_and_reordering_together(clock: ManualClock) -> None:
    gateway = five_refunds_a_second_apart(clock, duplicate_webhook_rate=0.5, reorder_webhooks=True)
    assert keys(gateway.pending_webhooks()) == ["k0", "k1", "k4", "k2", "k1", "k3"]


def test_the_same_seed_and_calls_give_the_same_deliveries(clock: ManualClock) -> None:
    first = five_refunds_a_second_apart(clock, duplicate_webhook_rate=0.5, reorder_webhooks=True)
    again = five_refunds_a_second_apart(
        ManualClock(START), duplicate_webhook_rate=0.5, reorder_webhooks=True
    )
    assert first.pending_webhooks() == again.pending_webhooks()


def test_deliver_hands_out_one_at_a_time_by_default(clock: ManualClock) -> None:
    gateway = five_refunds_a_second_apart(clock)
    got: list[GatewayEvent] = []
    assert gateway.deliver(got.append) == 1
    assert gateway.deliver(got.append, limit=2) == 2
    assert keys(got) == ["k0", "k1", "k2"]
    assert keys(gateway.pending_webhooks()) == ["k3", "k4"]


def test_a_delivery_the_sink_refuses_stays_queued_in_its_place(clock: ManualClock) -> None:
    gateway = five_refunds_a_second_apart(clock)
    attempts: list[str] = []
    got: list[GatewayEvent] = []

    def down_once_for_k2(event: GatewayEvent) -> None:
        attempts.append(event.idempotency_key)
        if attempts == ["k0", "k1", "k2"]:
            raise ConnectionError("receiver answered 500")
        got.append(event)

    with pytest.raises(ConnectionError):
        gateway.deliver_due(down_once_for_k2)
    assert keys(gateway.pending_webhooks()) == ["k2", "k3", "k4"]
    assert gateway.deliver_due(down_once_for_k2) == 3
    assert keys(got) == ["k0", "k1", "k2", "k3", "k4"]
    assert attempts == ["k0", "k1", "k2", "k2", "k3", "k4"]


def test_events_wait_for_the_clock_even_when_delivery_is_asked(
    sandbox: SandboxGateway, clock: ManualClock
) -> None:
    sandbox.refund(idempotency_key="a", transaction_id="ch_open", amount=100, currency="EUR")
    got: list[GatewayEvent] = []
    assert sandbox.deliver_due(got.append) == 0
    clock.advance(CONFIRM)
    assert sandbox.deliver_due(got.append) == 1
    assert got[0].occurred_at == START + CONFIRM
