"""/metrics' business figures maintained from domain events equal a full scan of the store, on
SQLite and PostgreSQL; each event counts once, whatever order transactions commit in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ExpressPolicy, ProcessPolicy
from refundry.services.cases.actions import approve, cancel, inspect, receive, ship
from refundry.services.cases.opening import CaseDesk, open_case
from refundry.services.cases.process import Actor
from refundry.services.cases.timers import run_timers
from refundry.services.errors import Forbidden
from refundry.services.operations.metric_counters import (
    counted_figures,
    fold,
    metrics_figures,
    rebuild,
)
from refundry.services.operations.metrics_figures import Figures, scan_figures
from refundry.services.orders.ingest import ingest_order
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.gateway_events import handle_gateway_event
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.tables import outbox
from tests.conftest import migrated_database
from tests.tools import runtime_for

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
CUSTOMER = Actor("customer", ex.CUSTOMER)
AGENT = Actor("agent", "li")
MERCHANT = Actor("merchant", "m-1")
ADMIN = Actor("admin", "prometheus")


@pytest.fixture()
def world(engine: Engine) -> dict[str, Any]:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, seed=3, confirm_after=timedelta(seconds=5))
    for doc in (ex.THRESHOLD, ex.CASHBACK, ex.GIFT):
        gateway.capture(doc["tenders"][0]["gateway_txn_id"], doc["tenders"][0]["amount"], "CNY")
    with UnitOfWork(engine) as uow:
        for doc in (ex.THRESHOLD, ex.CASHBACK, ex.GIFT):
            ingest_order(
                uow.conn,
                {"order": doc, "customer": {"points_balance": 0}},
                policy=Policy(),
                now=START - timedelta(days=200),
            )
        uow.commit()
    runtime = runtime_for(engine, clock=clock, gateway=gateway)
    return {"engine": engine, "clock": clock, "gateway": gateway, "runtime": runtime}


def settle(world: dict[str, Any]) -> None:
    relay, clock = world["runtime"].relay(), world["clock"]
    relay.drain()
    clock.advance(timedelta(seconds=10))
    world["gateway"].deliver_due(lambda e: handle_gateway_event(world["engine"], e, now=clock()))
    relay.drain()


def both(engine: Engine) -> tuple[Figures, Figures]:
    """(the counters after folding, the full scan), read in one transaction."""
    with UnitOfWork(engine) as uow:
        fold(uow.conn)
        counted, scanned = counted_figures(uow.conn), scan_figures(uow.conn)
        uow.commit()
    return counted, scanned


def request(order_id: str, line: str, *, reason: str, kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "order_id": order_id,
        "reason": reason,
        "kind": kind,
        "lines": [{"line_id": line, "quantity": 1}],
    }
    if kind == "return_and_refund":
        doc["return_method"] = "self_ship"
    return doc


def test_counters_folded_from_events_equal_the_full_scan_at_every_step(
    world: dict[str, Any],
) -> None:
    engine, clock, desk = world["engine"], world["clock"], world["runtime"].desk
    counted, scanned = both(engine)
    assert counted == scanned
    assert counted.orders == 3 and sum(counted.cases.values()) == 0

    # A small refund-only case: approved by the review rules, refunded with a 满减 claw-back.
    small = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-500-100", "Y", reason="not_received", kind="refund_only"),
    )
    assert small.review["rule"] == "small_amount"
    clock.advance(timedelta(minutes=7))
    settle(world)
    counted, scanned = both(engine)
    assert counted == scanned
    assert counted.auto_approval_ratio == 1
    assert [(c.kind, c.total) for c in counted.clawbacks] == [("discount_clawback", 6667)]

    # A return the merchant approves, receives and inspects, hours apart.
    manual = CaseDesk(
        engine, Policy(), ProcessPolicy(review_rules=(), express=ExpressPolicy(enabled=False))
    )
    ret = open_case(
        manual,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "A", reason="quality_issue", kind="return_and_refund"),
    )
    clock.advance(timedelta(hours=3))
    approve(manual, ret.case_id, actor=MERCHANT, now=clock())
    clock.advance(timedelta(hours=20))
    ship(manual, ret.case_id, actor=CUSTOMER, now=clock(), tracking_number="SF1001")
    clock.advance(timedelta(days=2))
    receive(manual, ret.case_id, actor=MERCHANT, now=clock())
    counted, scanned = both(engine)  # folded half way: the rest must add up the same
    assert counted == scanned
    clock.advance(timedelta(hours=5))
    inspect(manual, ret.case_id, actor=MERCHANT, now=clock(), result="pass")
    settle(world)
    # One the customer cancels, and a timer completing the refunded cases.
    other = open_case(
        manual,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-gift", "X", reason="changed_mind", kind="return_and_refund"),
    )
    cancel(manual, other.case_id, actor=CUSTOMER, now=clock())
    clock.advance(timedelta(days=8))
    run_timers(desk, now=clock())

    counted, scanned = both(engine)
    assert counted == scanned
    assert counted.cases["cancelled"] == 1 and counted.cases["completed"] == 2
    assert counted.refund_seconds.count == 2
    assert counted.refunds_by_merchant == {"m-1": 2}
    assert {s.stage for s in counted.stages} >= {"under_review", "awaiting_return", "received"}
    # Nothing left to fold: a second scrape reads the same figures.
    assert metrics_figures(engine, ADMIN) == scanned


def test_metrics_figures_are_for_admins_only(world: dict[str, Any]) -> None:
    with pytest.raises(Forbidden):
        metrics_figures(world["engine"], AGENT)


def test_rebuild_sets_the_counters_to_the_scan_and_counts_nothing_twice(
    world: dict[str, Any],
) -> None:
    engine, clock = world["engine"], world["clock"]
    open_case(
        world["runtime"].desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-500-100", "Y", reason="not_received", kind="refund_only"),
    )
    settle(world)
    with UnitOfWork(engine) as uow:
        rebuild(uow.conn)  # what migration 0008 runs on a store with history
        uow.commit()
    counted, scanned = both(engine)  # the events rebuild saw are not folded again
    assert counted == scanned
    assert counted.orders == 3


def _order_event(conn: Any, order_id: str) -> None:
    enqueue(
        conn,
        topic="event",
        key=f"event:order.ingested:{order_id}",
        at=START,
        payload={"type": "order.ingested", "order_id": order_id, "customer_id": "c-x"},
    )


@pytest.fixture()
def pg_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with migrated_database("postgresql", request, tmp_path_factory) as url:
        yield url


def test_an_event_committed_after_a_later_one_was_folded_still_counts(pg_db: str) -> None:
    """On PostgreSQL a transaction can commit a lower outbox id after a higher one was
    committed and folded: folding by "ids above the last one folded" would skip it forever.
    (SQLite has one writer at a time: there, ids commit in order.)"""
    slow_engine, fast_engine = make_engine(pg_db), make_engine(pg_db)
    try:
        with UnitOfWork(fast_engine) as uow:  # migration 0008 left no counters to start from
            assert counted_figures(uow.conn).orders == 0
        slow = slow_engine.connect()
        slow_tx = slow.begin()
        _order_event(slow, "o-slow")  # takes the lower id, commits last
        with UnitOfWork(fast_engine) as uow:
            _order_event(uow.conn, "o-fast")
            uow.commit()
        with UnitOfWork(fast_engine) as uow:
            assert fold(uow.conn) == 1
            assert counted_figures(uow.conn).orders == 1
            uow.commit()
        slow_tx.commit()
        slow.close()
        with UnitOfWork(fast_engine) as uow:
            ids = {key: i for key, i in uow.conn.execute(select(outbox.c.key, outbox.c.id))}
            assert ids["event:order.ingested:o-slow"] < ids["event:order.ingested:o-fast"]
            assert fold(uow.conn) == 1
            assert counted_figures(uow.conn).orders == 2
            uow.commit()
    finally:
        slow_engine.dispose()
        fast_engine.dispose()
