"""The outbox relay against the sandbox gateway: money leaves once, every answer is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.access import Actor
from refundry.services.audit.verify import verify_chain
from refundry.services.errors import Conflict
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.refunds.failed_refunds import refund_to_wallet, retry_failed_refund
from refundry.services.refunds.gateway_events import handle_gateway_event
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from refundry.store.tables import gateway_calls, inbox_messages, outbox, refund_tenders, refunds
from tests.tools import runtime_for

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


@pytest.fixture()
def world(engine: Engine) -> dict[str, Any]:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, seed=7, confirm_after=timedelta(seconds=5))
    gateway.capture("ali-o-500-100", 50000, "CNY")
    relay = runtime_for(engine, clock=clock, gateway=gateway).relay()
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, ex.THRESHOLD, policy=Policy(), now=START)
        uow.commit()
    return {"engine": engine, "clock": clock, "gateway": gateway, "relay": relay}


def apply_y(engine: Engine, now: datetime, key: str = "k") -> str:
    req = ex.request("o-500-100", "Y")
    plan = preview_refund(engine, order_id="o-500-100", request=req, policy=Policy(), now=now)
    return apply_refund(
        engine,
        order_id="o-500-100",
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key=key,
        actor="agent:a",
        now=now,
        policy=Policy(),
    ).refund_id


def status(engine: Engine, refund_id: str) -> tuple[str, str]:
    with UnitOfWork(engine, readonly=True) as uow:
        r = uow.conn.execute(select(refunds.c.status).where(refunds.c.id == refund_id)).scalar()
        t = uow.conn.execute(
            select(refund_tenders.c.status).where(refund_tenders.c.refund_id == refund_id)
        ).scalar()
    return str(r), str(t)


def deliver_webhooks(world: dict[str, Any]) -> list[str]:
    outcomes: list[str] = []
    world["gateway"].deliver_due(
        lambda e: outcomes.append(handle_gateway_event(world["engine"], e, now=world["clock"]()))
    )
    return outcomes


def test_accepted_then_webhook_confirms_and_customer_is_told(world: dict[str, Any]) -> None:
    engine, relay, clock = world["engine"], world["relay"], world["clock"]
    refund_id = apply_y(engine, clock())
    assert relay.drain() >= 3  # gateway request, notifications, event
    assert status(engine, refund_id) == ("refunding", "accepted")
    clock.advance(timedelta(seconds=6))
    assert deliver_webhooks(world) == ["applied"]
    assert status(engine, refund_id) == ("refunded", "succeeded")
    relay.drain()
    with UnitOfWork(engine, readonly=True) as uow:
        templates = [
            t
            for (t,) in uow.conn.execute(
                select(inbox_messages.c.template).order_by(inbox_messages.c.id)
            )
        ]
        assert templates == ["refund.sent", "discount.clawed_back", "refund.refunded"]
        pending = uow.conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.status != "done")
        ).scalar()
        assert pending == 0
        assert verify_chain(uow.conn).ok
    assert world["gateway"].ledger.refunded == {"ali-o-500-100": 10000}


def test_duplicate_and_late_webhooks_change_nothing(world: dict[str, Any]) -> None:
    engine, relay, clock = world["engine"], world["relay"], world["clock"]
    refund_id = apply_y(engine, clock())
    relay.drain()
    clock.advance(timedelta(seconds=6))
    events = list(world["gateway"].pending_webhooks())
    assert len(events) == 1
    first = handle_gateway_event(engine, events[0], now=clock())
    again = handle_gateway_event(engine, events[0], now=clock())
    assert (first, again) == ("applied", "duplicate")
    assert status(engine, refund_id) == ("refunded", "succeeded")


def test_timeout_after_acceptance_is_resolved_by_lookup_and_not_refunded_twice(
    world: dict[str, Any],
) -> None:
    engine, relay, clock, gateway = (
        world["engine"],
        world["relay"],
        world["clock"],
        world["gateway"],
    )
    gateway.inject("accept_then_time_out")
    refund_id = apply_y(engine, clock())
    relay.drain()
    assert status(engine, refund_id) == ("refunding", "accepted")
    assert len(gateway.ledger.requests) == 1
    with UnitOfWork(engine, readonly=True) as uow:
        calls = uow.conn.execute(select(gateway_calls.c.outcome)).scalars().all()
    assert calls == ["accepted"]


def test_unreachable_gateway_is_retried_with_the_same_key(world: dict[str, Any]) -> None:
    engine, relay, clock, gateway = (
        world["engine"],
        world["relay"],
        world["clock"],
        world["gateway"],
    )
    gateway.inject("unavailable", "timeout")
    refund_id = apply_y(engine, clock())
    relay.drain()
    assert status(engine, refund_id) == ("refunding", "pending")
    clock.advance(timedelta(seconds=3))
    relay.drain()  # second try: a plain timeout, nothing reached the gateway
    clock.advance(timedelta(seconds=5))
    relay.drain()
    assert status(engine, refund_id) == ("refunding", "accepted")
    keys = {r.idempotency_key for r in gateway.ledger.requests}
    assert keys == {f"{refund_id}:T1"}
    with UnitOfWork(engine, readonly=True) as uow:
        calls = uow.conn.execute(select(gateway_calls.c.outcome).order_by(gateway_calls.c.id))
        assert calls.scalars().all() == ["unavailable", "timeout", "accepted"]


def test_closed_card_fails_then_agent_moves_money_to_wallet(world: dict[str, Any]) -> None:
    engine, relay, clock, gateway = (
        world["engine"],
        world["relay"],
        world["clock"],
        world["gateway"],
    )
    gateway.set_card_state("ali-o-500-100", "closed")
    refund_id = apply_y(engine, clock())
    relay.drain()
    clock.advance(timedelta(seconds=6))
    assert deliver_webhooks(world) == ["applied"]
    assert status(engine, refund_id) == ("refund_failed", "failed")
    refund_to_wallet(
        engine,
        refund_id=refund_id,
        tender_id="T1",
        actor=Actor("agent", "li"),
        now=clock(),
        reason="card closed",
        gateway=gateway,
    )
    assert status(engine, refund_id) == ("refunded", "to_wallet")
    with UnitOfWork(engine, readonly=True) as uow:
        assert balance(uow.conn, "wallet", ex.CUSTOMER) == 10000
        assert verify_chain(uow.conn).ok
    with pytest.raises(Conflict) as err:
        refund_to_wallet(
            engine,
            refund_id=refund_id,
            tender_id="T1",
            actor=Actor("agent", "li"),
            now=clock(),
            reason="again",
            gateway=gateway,
        )
    assert err.value.code == "refund.not_failed"


def test_blocked_card_refused_then_agent_retry_succeeds(world: dict[str, Any]) -> None:
    engine, relay, clock, gateway = (
        world["engine"],
        world["relay"],
        world["clock"],
        world["gateway"],
    )
    gateway.set_card_state("ali-o-500-100", "blocked")
    refund_id = apply_y(engine, clock())
    relay.drain()
    assert status(engine, refund_id) == ("refund_failed", "failed")
    gateway.set_card_state("ali-o-500-100", "open")
    key = retry_failed_refund(
        engine,
        refund_id=refund_id,
        tender_id="T1",
        actor=Actor("agent", "li"),
        now=clock(),
        reason="customer unblocked the card",
    )
    assert key == f"{refund_id}:T1:a2"
    assert status(engine, refund_id) == ("refunding", "pending")
    relay.drain()
    clock.advance(timedelta(seconds=6))
    assert deliver_webhooks(world) == ["applied"]
    assert status(engine, refund_id) == ("refunded", "succeeded")
    assert gateway.ledger.refunded == {"ali-o-500-100": 10000}


def test_key_conflict_is_parked_for_an_operator_not_retried(world: dict[str, Any]) -> None:
    engine, relay, clock, gateway = (
        world["engine"],
        world["relay"],
        world["clock"],
        world["gateway"],
    )
    refund_id = apply_y(engine, clock())
    # The gateway already has this key for other parameters (a bug somewhere): a conflict.
    gateway.refund(
        idempotency_key=f"{refund_id}:T1", transaction_id="ali-o-500-100", amount=1, currency="CNY"
    )
    relay.drain()
    assert status(engine, refund_id) == ("refunding", "pending")
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(
            select(outbox.c.status, outbox.c.attempts, outbox.c.last_error).where(
                outbox.c.topic == "gateway.refund"
            )
        ).one()
        assert (row.status, row.attempts) == ("dead", 1)
        assert row.last_error.startswith("gateway.idempotency_conflict")
        assert verify_chain(uow.conn).ok


def test_exhausted_retries_with_nothing_at_the_gateway_fail_the_refund(
    world: dict[str, Any],
) -> None:
    engine, relay, clock, gateway = (
        world["engine"],
        world["relay"],
        world["clock"],
        world["gateway"],
    )
    gateway.inject(*(["unavailable"] * 12))
    refund_id = apply_y(engine, clock())
    for _ in range(12):
        relay.drain()
        clock.advance(timedelta(minutes=16))
    assert status(engine, refund_id) == ("refund_failed", "failed")
    assert gateway.ledger.refunded == {"ali-o-500-100": 0}
    with UnitOfWork(engine, readonly=True) as uow:
        code = uow.conn.execute(select(refund_tenders.c.failure_code)).scalar()
    assert code == "gateway_unreachable"
