"""Webhooks to the shop, end to end on SQLite and PostgreSQL: a refund and a case change the
store, the relay fans their domain events out, the sender posts them over real HTTP to a
shop endpoint (tests/services/shop_receiver.py) that verifies each with the
``standardwebhooks`` library and mirrors what refundry changed."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.shop_webhooks import SandboxHookPoster
from refundry.demo import worked_examples as ex
from refundry.domain.errors import InvalidInput
from refundry.domain.policy import Policy
from refundry.services.access import Actor
from refundry.services.cases.opening import CaseDesk, open_case
from refundry.services.cases.timers import run_timers
from refundry.services.errors import NotFound
from refundry.services.operations.operations_figures import operations_figures
from refundry.services.orders.ingest import ingest_order
from refundry.services.outbox.relay import Relay
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.refunds.gateway_events import handle_gateway_event
from refundry.services.shop_webhooks import catalogue
from refundry.services.shop_webhooks.delivery import HookSender, RetrySchedule
from refundry.services.shop_webhooks.endpoints import read_endpoint, register_endpoint, set_enabled
from refundry.services.shop_webhooks.fanout import fan_out
from refundry.services.shop_webhooks.log import delivery_log, replay
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)
from tests.services.shop_receiver import ShopMirror, shop_endpoint
from tests.tools import runtime_for

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
ADMIN = Actor("admin", "shop-backend")
CUSTOMER = Actor("customer", ex.CUSTOMER)


@dataclass
class Shop:
    engine: Engine
    clock: ManualClock
    gateway: SandboxGateway
    relay: Relay
    sender: HookSender
    mirror: ShopMirror
    endpoint_id: str
    desk: CaseDesk

    def deliver(self) -> None:
        """The worker's round until nothing is due: relay, then the webhook sender."""
        for _ in range(20):
            if not (self.relay.run_once() + self.sender.run_once()):
                return

    def confirm_gateway(self) -> None:
        self.clock.advance(timedelta(seconds=6))
        self.gateway.deliver_due(lambda e: handle_gateway_event(self.engine, e, now=self.clock()))


@pytest.fixture()
def shop(engine: Engine) -> Iterator[Shop]:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, seed=7, confirm_after=timedelta(seconds=5))
    gateway.capture("ali-o-coupon", 27000, "CNY")
    runtime = runtime_for(engine, clock=clock, gateway=gateway)
    sender = runtime.hook_sender()
    sender.rng = random.Random(12)
    with shop_endpoint() as mirror:
        keyed = register_endpoint(
            engine, actor=ADMIN, url=mirror.url, event_types=["*"], now=START, dev=True
        )
        mirror.secrets.append(keyed.secret)
        yield Shop(
            engine,
            clock,
            gateway,
            runtime.relay(),
            sender,
            mirror,
            keyed.endpoint.id,
            runtime.desk,
        )


def ingest(shop: Shop, order: dict[str, Any], *, at: datetime = START, **customer: Any) -> None:
    with UnitOfWork(shop.engine) as uow:
        ingest_order(uow.conn, {"order": order, "customer": customer}, policy=Policy(), now=at)
        uow.commit()


def refund_coupon_order(shop: Shop) -> str:
    ingest(shop, ex.COUPON, **{k: v for k, v in ex.COUPON_SNAPSHOT.items() if k != "customer_id"})
    now = shop.clock()
    req = ex.request("o-coupon", "A")
    plan = preview_refund(shop.engine, order_id="o-coupon", request=req, policy=Policy(), now=now)
    return apply_refund(
        shop.engine,
        order_id="o-coupon",
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key="k-1",
        actor="agent:a",
        now=now,
        policy=Policy(),
    ).refund_id


def open_threshold_case(shop: Shop) -> str:
    shop.gateway.capture("ali-o-500-100", 50000, "CNY")
    ingest(shop, ex.THRESHOLD, at=START - timedelta(days=200))
    return open_case(
        shop.desk,
        actor=CUSTOMER,
        now=shop.clock(),
        request={
            "order_id": "o-500-100",
            "reason": "not_received",
            "kind": "refund_only",
            "lines": [{"line_id": "Y", "quantity": 1}],
        },
    ).case_id


def test_a_refund_reaches_the_shop_signed_with_what_it_mirrors(shop: Shop) -> None:
    refund_id = refund_coupon_order(shop)
    shop.deliver()
    shop.confirm_gateway()
    shop.deliver()
    mirror = shop.mirror
    assert mirror.rejected == []
    assert [t for _, t in mirror.attempts] == [
        "order.ingested",
        "refund.applied",
        "effect.refund_to_tender",
        "effect.coupon_reissue",
        "refund.refunded",
    ]
    # the reissued coupon's new id and validity, as the shop's coupon ledger needs them
    assert mirror.coupons == {
        f"CP-30~{refund_id}": {
            "replaces": "CP-30",
            "value": 3000,
            "valid_until": "2026-12-01T04:00:00Z",
        }
    }
    assert mirror.refunds == {refund_id: "refunded"}
    (applied,) = mirror.of_type("refund.applied")
    assert applied["timestamp"] == "2026-11-24T04:00:00Z"
    data = applied["data"]
    assert (data["refund_id"], data["order_id"], data["customer_id"]) == (
        refund_id,
        "o-coupon",
        "c-100",
    )
    assert (data["total"], data["currency"], data["status"]) == (27000, "CNY", "refunding")
    assert data["tenders"] == [
        {"tender_id": "T1", "kind": "external", "amount": 27000, "points": 0}
    ]
    assert data["units"] == [{"line_id": "A", "sku": "SKU-A", "quantity": 1}]
    assert [e["type"] for e in data["effects"]] == ["refund_to_tender", "coupon_reissue"]
    (refunded,) = mirror.of_type("refund.refunded")
    assert (refunded["data"]["from"], refunded["data"]["attempt"]) == ("refunding", 1)
    (tender,) = refunded["data"]["tenders"]
    assert (tender["tender_id"], tender["status"], tender["amount"]) == ("T1", "succeeded", 27000)
    assert tender["gateway_refund_id"].startswith("re_")
    for headers in mirror.headers:
        assert headers["webhook-id"].startswith("msg_")
        sent = int(headers["webhook-timestamp"])  # the attempt's real time, Unix seconds
        assert abs(sent - datetime.now(UTC).timestamp()) < 120
        assert headers["webhook-signature"].startswith("v1,")
        assert " " not in headers["webhook-signature"]
    log, more = delivery_log(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id)
    assert more is None
    assert [(d.event_type, d.status, d.attempts) for d in reversed(log)] == [
        (t, "succeeded", 1) for _, t in mirror.attempts
    ]
    assert all(d.attempt_log[0].status_code == 200 for d in log)


def test_case_events_out_of_order_and_again_leave_the_shop_right(shop: Shop) -> None:
    mirror = shop.mirror
    mirror.fail["case.approved"] = 1  # its first delivery fails: later events overtake it
    case_id = open_threshold_case(shop)
    shop.deliver()
    shop.confirm_gateway()
    shop.deliver()
    run_timers(shop.desk, now=shop.clock())
    shop.deliver()
    shop.clock.advance(timedelta(seconds=61))  # the retry's step is 30-60 s
    shop.deliver()
    arrived = [t for _, t in mirror.attempts if t.startswith("case.")]
    assert arrived == [
        "case.requested",
        "case.under_review",
        "case.approved",  # answered 500
        "case.refunding",
        "case.refunded",
        "case.completed",
        "case.approved",  # the retry, after the case completed
    ]
    assert mirror.cases == {case_id: (6, "completed")}  # the older event changed nothing
    assert mirror.duplicates == 0
    approved = next(i for i, t in mirror.attempts if t == "case.approved")
    assert approved == mirror.attempts[-1][0]  # the retry kept its webhook-id

    # one event again: the same webhook-id, applied once by the shop
    assert (
        replay(
            shop.engine,
            actor=ADMIN,
            endpoint_id=shop.endpoint_id,
            now=shop.clock(),
            event_id=approved,
        )
        == 1
    )
    shop.deliver()
    assert mirror.received[-1] == approved
    assert mirror.duplicates == 1
    assert mirror.cases == {case_id: (6, "completed")}

    # a time range again: every event in it, none applied twice
    with UnitOfWork(shop.engine, readonly=True) as uow:
        stored = uow.conn.execute(select(webhook_events.c.id)).scalars().all()
    before = len(mirror.received)
    queued = replay(
        shop.engine,
        actor=ADMIN,
        endpoint_id=shop.endpoint_id,
        now=shop.clock(),
        since=START - timedelta(days=365),  # the order was ingested 200 days before
        until=START + timedelta(hours=1),
    )
    assert queued == len(stored) == len(set(mirror.received))
    shop.deliver()
    assert sorted(mirror.received[before:]) == sorted(stored)
    assert mirror.cases == {case_id: (6, "completed")}
    assert len(mirror.applied) == len(stored)


def test_a_failing_endpoint_backs_off_then_is_disabled(shop: Shop) -> None:
    sender = HookSender(
        engine=shop.engine,
        poster=shop.sender.poster,
        clock=shop.clock,
        schedule=RetrySchedule(
            base=timedelta(seconds=10), cap=timedelta(seconds=40), max_attempts=4
        ),
        disable_after=6,
        rng=random.Random(3),
    )
    mirror = shop.mirror
    mirror.fail_everything = True
    ingest(shop, ex.COUPON)
    shop.relay.drain()
    steps = []
    for _ in range(4):
        assert sender.run_once() == 1
        (delivery,), _ = delivery_log(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id)
        last = delivery.attempt_log[-1]
        assert last.status_code == 500
        if last.next_attempt_at is not None:
            steps.append((last.next_attempt_at - last.at).total_seconds())
            assert sender.run_once() == 0  # not due before its time
            shop.clock.advance(last.next_attempt_at - shop.clock())
    # exponential (10, 20, 40 s), each between half the step and the step (jitter)
    assert len(steps) == 3
    for step, full in zip(steps, (10, 20, 40), strict=True):
        assert full / 2 <= step <= full
    assert len(set(steps)) == 3
    (delivery,), _ = delivery_log(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 4, None)
    assert [a.attempt for a in delivery.attempt_log] == [1, 2, 3, 4]
    assert all(a.latency_ms >= 0 and a.error is not None for a in delivery.attempt_log)
    assert len({i for i, _ in mirror.attempts}) == 1  # the same webhook-id on every attempt
    endpoint = read_endpoint(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id)
    assert (endpoint.status, endpoint.consecutive_failures) == ("enabled", 4)

    ingest(shop, ex.POINTS)
    shop.relay.drain()
    assert sender.run_once() == 1
    shop.clock.advance(timedelta(seconds=10))
    assert sender.run_once() == 1
    endpoint = read_endpoint(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id)
    assert (endpoint.status, endpoint.disabled_reason, endpoint.consecutive_failures) == (
        "disabled",
        "6 consecutive failed attempts",
        6,
    )
    shop.clock.advance(timedelta(hours=1))
    assert sender.run_once() == 0  # disabled: nothing is sent, the delivery waits
    ops = operations_figures(shop.engine, ADMIN, now=shop.clock())  # what /metrics shows
    assert ops.webhook_deliveries == {"pending": 1, "failed": 1}
    assert ops.webhook_endpoints_disabled == 1
    assert len(mirror.attempts) == 6

    mirror.fail_everything = False
    set_enabled(
        shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id, enabled=True, now=shop.clock()
    )
    assert sender.run_once() == 1  # the waiting one
    assert [t for _, t in mirror.attempts[-1:]] == ["order.ingested"]
    assert mirror.applied[mirror.received[-1]]["data"]["order_id"] == "o-points"
    endpoint = read_endpoint(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id)
    assert (endpoint.status, endpoint.consecutive_failures) == ("enabled", 0)
    assert sender.run_once() == 0  # the failed one stays failed until replayed
    first = mirror.attempts[0][0]
    replay(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id, now=shop.clock(), event_id=first)
    assert sender.run_once() == 1
    assert mirror.received[-1] == first
    log, _ = delivery_log(shop.engine, actor=ADMIN, endpoint_id=shop.endpoint_id)
    coupon = next(d for d in log if d.event_id == first)
    assert (coupon.status, coupon.attempts) == ("succeeded", 5)
    assert [a.status_code for a in coupon.attempt_log] == [500, 500, 500, 500, 200]


def test_a_rotated_secret_signs_beside_the_old_one_for_the_overlap(shop: Shop) -> None:
    from refundry.services.shop_webhooks.endpoints import rotate_secret

    mirror = shop.mirror
    old = mirror.secrets[0]
    keyed = rotate_secret(
        shop.engine,
        actor=ADMIN,
        endpoint_id=shop.endpoint_id,
        now=shop.clock(),
        overlap=timedelta(hours=1),
    )
    assert keyed.secret.startswith("whsec_") and keyed.secret != old
    ingest(shop, ex.COUPON)
    shop.deliver()  # the shop still verifies with the old secret
    assert (len(mirror.received), mirror.rejected) == (1, [])
    assert len(mirror.headers[-1]["webhook-signature"].split(" ")) == 2
    mirror.secrets = [keyed.secret]
    shop.clock.advance(timedelta(hours=2))
    ingest(shop, ex.POINTS)
    shop.deliver()
    assert (len(mirror.received), mirror.rejected) == (2, [])
    assert len(mirror.headers[-1]["webhook-signature"].split(" ")) == 1
    mirror.secrets = [old]  # the old secret no longer verifies anything
    ingest(shop, ex.CASHBACK)
    shop.deliver()
    assert mirror.rejected == ["No matching signature found"]


def test_the_catalogue_sends_named_types_only_with_stable_ids() -> None:
    """A domain event the catalogue does not name reaches no shop; a named one gets an id
    derived from its outbox key (the same however often it is fanned out) and a body without
    refundry's own fields (the request id)."""
    assert catalogue.webhook_events("event:x:1", {"type": "agent.mystery", "x": 1}, START) == []
    payload = {"type": "restock", "case_id": "cs-1", "sku": "SKU-Y", "request_id": "req-9"}
    (restock,) = catalogue.webhook_events("event:restock:cs-1:Y", payload, START)
    assert restock == catalogue.webhook_events("event:restock:cs-1:Y", dict(payload), START)[0]
    other = catalogue.event_id("event:restock:cs-1:Z")
    assert restock.id == catalogue.event_id("event:restock:cs-1:Y") != other
    assert restock.type == "inventory.restock" and restock.type in catalogue.EVENT_TYPES
    assert json.loads(restock.body) == {
        "type": "inventory.restock",
        "timestamp": "2026-11-24T04:00:00Z",
        "data": {"case_id": "cs-1", "sku": "SKU-Y"},
    }


def test_the_desks_acts_on_a_case_reach_the_shop() -> None:
    """The domain events of services/cases/handling.py and debts.py (record_desk_entry writes
    ``case.<kind>``) are named in the catalogue, each with its fields."""
    for kind, fields in (
        ("note_added", {"text": "called the customer"}),
        ("assigned", {"assignee": "agent:li", "before": None}),
        ("debt_recovered", {"amount": 5000, "currency": "CNY", "debt": 15000}),
        ("debt_written_off", {"amount": 15000, "currency": "CNY", "debt": 0}),
    ):
        payload = {"type": f"case.{kind}", "case_id": "cs-1", "entry_id": 1, **fields}
        (event,) = catalogue.webhook_events(f"event:case_entry:cs-1:{kind}", payload, START)
        assert event.type == f"case.{kind}" and event.type in catalogue.EVENT_TYPES
        assert json.loads(event.body)["data"] == {"case_id": "cs-1", "entry_id": 1, **fields}


def test_senders_in_parallel_send_each_delivery_once(engine: Engine) -> None:
    """Four workers' senders at once (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: its write
    lock) share 40 deliveries: each goes out exactly once, each attempt is logged once."""
    clock = ManualClock(START)
    register_endpoint(
        engine, actor=ADMIN, url="https://shop.example/a", event_types=["*"], now=START
    )
    with UnitOfWork(engine) as uow:
        for i in range(40):
            payload = {"type": "order.ingested", "order_id": f"o-{i}", "customer_id": "c-1"}
            fan_out(uow.conn, key=f"event:o-{i}", payload=payload, occurred_at=START, now=START)
        uow.commit()
    poster = SandboxHookPoster()
    senders = [
        HookSender(engine=engine, poster=poster, clock=clock, worker=f"w-{n}") for n in range(4)
    ]
    barrier = threading.Barrier(len(senders))

    def work(sender: HookSender) -> None:
        barrier.wait()
        while sender.run_once(batch=3):
            pass

    threads = [threading.Thread(target=work, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    ids = [headers["webhook-id"] for _, _, headers in poster.posts]
    assert len(ids) == 40 == len(set(ids))
    with UnitOfWork(engine, readonly=True) as uow:
        counts = uow.conn.execute(
            select(webhook_deliveries.c.status, func.count()).group_by(webhook_deliveries.c.status)
        ).all()
        attempts = uow.conn.execute(select(func.count()).select_from(webhook_attempts)).scalar()
    assert [tuple(c) for c in counts] == [("succeeded", 40)]
    assert attempts == 40


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/hooks",
        "https://127.0.0.1/hooks",
        "https://10.0.0.8/hooks",
        "https://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "https://[::1]/hooks",
        "http://shop.example/hooks",
    ],
)
def test_outside_dev_mode_an_endpoint_is_public_and_https(engine: Engine, url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        register_endpoint(engine, actor=ADMIN, url=url, event_types=["*"], now=START)
    assert (refused.value.code, refused.value.field) == ("webhook.url_invalid", "url")
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(webhook_endpoints)).scalar() == 0
    made = register_endpoint(
        engine, actor=ADMIN, url="https://93.184.215.14/hooks", event_types=["*"], now=START
    )
    assert made.endpoint.url == "https://93.184.215.14/hooks"


def test_the_worker_forgets_old_events_that_wait_for_nothing(engine: Engine) -> None:
    """Past the retention an event delivered (or given up) goes with its deliveries and log;
    one still waiting for a delivery stays, and so does a recent one."""
    clock = ManualClock(START - timedelta(days=40))
    keyed = register_endpoint(
        engine, actor=ADMIN, url="https://shop.example/a", event_types=["*"], now=clock()
    )
    with UnitOfWork(engine) as uow:
        for name, at in (("old-sent", clock()), ("old-waiting", clock()), ("new", START)):
            payload = {"type": "order.ingested", "order_id": name}
            fan_out(uow.conn, key=f"event:{name}", payload=payload, occurred_at=at, now=at)
        uow.commit()
    sender = HookSender(
        engine=engine, poster=SandboxHookPoster(), clock=clock, retention=timedelta(days=30)
    )
    assert sender.run_once(batch=1) == 1  # the first old one is sent; the others wait
    clock.advance(timedelta(days=40))
    with UnitOfWork(engine) as uow:  # the new one is sent too
        uow.conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.event_id == catalogue.event_id("event:new"))
            .values(status="succeeded", next_attempt_at=None)
        )
        uow.commit()
    assert sender.sweep(now=clock()) == 1
    with UnitOfWork(engine, readonly=True) as uow:
        kept = set(uow.conn.execute(select(webhook_events.c.id)).scalars())
        logged = uow.conn.execute(select(func.count()).select_from(webhook_attempts)).scalar()
    assert kept == {catalogue.event_id("event:old-waiting"), catalogue.event_id("event:new")}
    assert logged == 0  # the one attempt belonged to the forgotten event
    with pytest.raises(NotFound):
        replay(
            engine,
            actor=ADMIN,
            endpoint_id=keyed.endpoint.id,
            now=clock(),
            event_id=catalogue.event_id("event:old-sent"),
        )
    assert sender.sweep(now=clock()) == 0
