"""A world of worked-example orders for the case services' tests (tests/services/test_cases.py,
test_case_desk.py): a sandbox gateway with their captures, a manual clock, the relay and the
case desk built as the bootstrap builds them, and the helpers that drive it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.events import RecordingPublisher
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.cases.process import Actor, load_case
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.gateway_events import handle_gateway_event
from refundry.services.uow import UnitOfWork
from refundry.store.tables import case_events
from tests.tools import runtime_for

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
CUSTOMER = Actor("customer", ex.CUSTOMER)
AGENT = Actor("agent", "li")
MERCHANT = Actor("merchant", "m-1")


def world_for(engine: Engine) -> dict[str, Any]:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, seed=3, confirm_after=timedelta(seconds=5))
    for doc in (ex.THRESHOLD, ex.CASHBACK, ex.GIFT, ex.POINTS):
        gateway.capture(doc["tenders"][0]["gateway_txn_id"], doc["tenders"][0]["amount"], "CNY")
    with UnitOfWork(engine) as uow:
        # The customer opened its account long ago: trusted enough for 极速退款 by default.
        for doc in (ex.THRESHOLD, ex.CASHBACK, ex.GIFT):
            ingest_order(
                uow.conn,
                {"order": doc, "customer": {"points_balance": 0}},
                policy=Policy(),
                now=START - timedelta(days=200),
            )
        uow.commit()
    publisher = RecordingPublisher()
    runtime = runtime_for(engine, clock=clock, gateway=gateway, publisher=publisher)
    return {
        "engine": engine,
        "clock": clock,
        "gateway": gateway,
        "relay": runtime.relay(),
        "publisher": publisher,
        "desk": runtime.desk,
    }


def request(
    order_id: str,
    *lines: str,
    reason: str = "changed_mind",
    kind: str = "return_and_refund",
    method: str = "self_ship",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "order_id": order_id,
        "reason": reason,
        "kind": kind,
        "lines": [{"line_id": x, "quantity": 1} for x in lines],
    }
    if kind == "return_and_refund":
        doc["return_method"] = method
    return doc


def settle_money(world: dict[str, Any]) -> None:
    world["relay"].drain()
    world["clock"].advance(timedelta(seconds=10))
    world["gateway"].deliver_due(
        lambda e: handle_gateway_event(world["engine"], e, now=world["clock"]())
    )
    world["relay"].drain()


def state(world: dict[str, Any], case_id: str) -> str:
    with UnitOfWork(world["engine"], readonly=True) as uow:
        return str(load_case(uow.conn, case_id, AGENT).state)


def timeline(world: dict[str, Any], case_id: str) -> list[str]:
    with UnitOfWork(world["engine"], readonly=True) as uow:
        return [
            a
            for (a,) in uow.conn.execute(
                select(case_events.c.action)
                .where(case_events.c.case_id == case_id)
                .order_by(case_events.c.id)
            )
        ]
