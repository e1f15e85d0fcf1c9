"""The relay sends a round's gateway refunds at once (relay_concurrency), and each tender is
still refunded once: one refund per key at the gateway, one recorded call, one outcome."""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway import GatewayAnswer
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.outbox.relay import Relay
from refundry.services.uow import UnitOfWork
from refundry.store.tables import gateway_calls, inbox_messages, outbox, refund_tenders, refunds
from tests.tools import refund_lines, runtime_for

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
ORDERS = 12


class SlowGateway:
    """The sandbox behind a gateway that takes ``delay`` to answer a refund, counting the calls
    in flight at once (the most seen: ``most``)."""

    def __init__(self, inner: SandboxGateway, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.in_flight = self.most = 0
        self._lock = threading.Lock()

    def refund(self, **call: Any) -> GatewayAnswer:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(self.delay)
            return self.inner.refund(**call)
        finally:
            with self._lock:
                self.in_flight -= 1

    def lookup(self, *, idempotency_key: str) -> GatewayAnswer | None:
        return self.inner.lookup(idempotency_key=idempotency_key)


def queue_refunds(engine: Engine, sandbox: SandboxGateway) -> list[str]:
    """ORDERS copies of the 满减 worked example, each with its own card, each refunded (line Y):
    ORDERS gateway refunds queued. Their refund ids."""
    ids = []
    with UnitOfWork(engine) as uow:
        for i in range(ORDERS):
            doc = copy.deepcopy(ex.THRESHOLD)
            doc["id"] = f"o-{i}"
            doc["tenders"][0]["gateway_txn_id"] = f"ch-{i}"
            sandbox.capture(f"ch-{i}", doc["tenders"][0]["amount"], "CNY")
            ingest_order(uow.conn, doc, policy=Policy(), now=START)
        uow.commit()
    for i in range(ORDERS):
        ids.append(refund_lines(engine, f"o-{i}", "Y", now=START))
    return ids


def relay_for(engine: Engine, *, concurrency: int) -> tuple[Relay, SandboxGateway, SlowGateway]:
    clock = ManualClock(START + timedelta(seconds=1))
    sandbox = SandboxGateway(clock=clock, confirm_after=timedelta(0))
    slow = SlowGateway(sandbox, delay=0.05)
    relay = runtime_for(engine, clock=clock, gateway=slow).relay()  # type: ignore[arg-type]
    relay.concurrency = concurrency
    return relay, sandbox, slow


@pytest.mark.parametrize("concurrency", [8, 1])
def test_a_rounds_gateway_refunds_are_in_flight_at_once_and_each_settles_once(
    engine: Engine, concurrency: int
) -> None:
    relay, sandbox, slow = relay_for(engine, concurrency=concurrency)
    refund_ids = queue_refunds(engine, sandbox)
    relay.drain()
    # The old relay sent one refund after the other: never two in flight.
    assert slow.most >= 2 if concurrency > 1 else slow.most == 1
    created = Counter(r.idempotency_key for r in sandbox.ledger.requests if r.outcome == "created")
    assert sorted(created) == sorted(f"{rid}:T1" for rid in refund_ids)
    assert set(created.values()) == {1}
    with UnitOfWork(engine, readonly=True) as uow:
        c = uow.conn
        assert Counter(c.execute(select(refunds.c.status)).scalars()) == {"refunded": ORDERS}
        assert Counter(c.execute(select(refund_tenders.c.status)).scalars()) == {
            "succeeded": ORDERS
        }
        calls = Counter(c.execute(select(gateway_calls.c.idempotency_key)).scalars())
        assert calls == dict.fromkeys(created, 1)
        assert set(c.execute(select(outbox.c.status)).scalars()) == {"done"}


def test_answers_recorded_one_by_one_when_their_shared_transaction_fails(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One answer whose recording fails does not lose the others recorded with it: they are
    recorded on their own, and its message is left to its lease (delivered again later)."""
    relay, sandbox, _slow = relay_for(engine, concurrency=8)
    relay.answers_per_transaction = 50  # a shop on one database may record many at once
    refund_ids = queue_refunds(engine, sandbox)
    bad = f"{refund_ids[3]}:T1"
    settle_in = Relay._settle_in

    def failing(self: Relay, conn: Any, answers: list[Any], *args: Any, **kw: Any) -> None:
        if any(p["idempotency_key"] == bad for _, p, _ in answers):
            raise RuntimeError("the store refused this one")
        settle_in(self, conn, answers, *args, **kw)

    monkeypatch.setattr(Relay, "_settle_in", failing)
    with pytest.raises(RuntimeError, match="the store refused this one"):
        relay.run_once()
    with UnitOfWork(engine, readonly=True) as uow:
        done = Counter(
            uow.conn.execute(
                select(refund_tenders.c.status).where(refund_tenders.c.refund_id != refund_ids[3])
            ).scalars()
        )
        left = uow.conn.execute(
            select(refund_tenders.c.status).where(refund_tenders.c.refund_id == refund_ids[3])
        ).scalar()
    assert done == {"succeeded": ORDERS - 1}
    assert left == "pending"
    monkeypatch.setattr(Relay, "_settle_in", settle_in)
    relay.clock.advance(timedelta(seconds=61))  # type: ignore[attr-defined]
    relay.drain()  # its lease ran out: delivered again, under the same key
    created = Counter(r.idempotency_key for r in sandbox.ledger.requests if r.outcome == "created")
    assert len(created) == ORDERS and set(created.values()) == {1}
    with UnitOfWork(engine, readonly=True) as uow:
        assert Counter(uow.conn.execute(select(refunds.c.status)).scalars()) == {"refunded": ORDERS}


class SlowNotifier:
    """A notifier that takes ``delay`` to deliver a customer's messages, counting the customers
    in delivery at once (the most seen: ``most``) and the customers it was handed."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.in_flight = self.most = 0
        self.customers: list[set[str]] = []
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any], *, key: str) -> None:
        self.send_many([(message, key)])

    def send_many(self, messages: list[tuple[dict[str, Any], str]]) -> dict[str, Exception]:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.customers.append({str(m["customer_id"]) for m, _ in messages})
        try:
            time.sleep(self.delay)
            return dict(self.inner.send_many(messages))
        finally:
            with self._lock:
                self.in_flight -= 1


def test_customers_messages_are_delivered_at_once_on_postgresql_one_customer_at_a_time_on_sqlite(
    engine: Engine,
) -> None:
    """Each customer's notifications go to the notifier together (one customer per call); on
    PostgreSQL several customers' at once (relay_message_concurrency), on SQLite one after the
    other (one writer). Every message is delivered once either way."""
    relay, sandbox, _slow = relay_for(engine, concurrency=4)
    relay.message_concurrency = 4
    slow = SlowNotifier(relay.notifier, delay=0.05)
    relay.notifier = slow
    with UnitOfWork(engine) as uow:
        for i in range(6):
            doc = copy.deepcopy(ex.THRESHOLD)
            doc["id"], doc["customer_id"] = f"o-{i}", f"c-{i}"
            doc["tenders"][0]["gateway_txn_id"] = f"ch-{i}"
            sandbox.capture(f"ch-{i}", doc["tenders"][0]["amount"], "CNY")
            ingest_order(uow.conn, doc, policy=Policy(), now=START)
        uow.commit()
    for i in range(6):
        refund_lines(engine, f"o-{i}", "Y", now=START)
    relay.drain()
    assert all(len(customers) == 1 for customers in slow.customers)  # one customer a call
    assert slow.most >= 2 if engine.dialect.name == "postgresql" else slow.most == 1
    with UnitOfWork(engine, readonly=True) as uow:
        assert set(uow.conn.execute(select(outbox.c.status)).scalars()) == {"done"}
        inbox = Counter(uow.conn.execute(select(inbox_messages.c.key)).scalars())
    assert inbox and set(inbox.values()) == {1}
