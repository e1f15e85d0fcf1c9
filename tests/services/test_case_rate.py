"""The case-creation rate limit holds under concurrent requests (each thread its own connection).

The naive check (count in its own read, then open) lets every request at ``limit - 1`` through
when they arrive together; ``open_case(rate=…)`` counts under the customer's lock."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import IdentityPolicy, ProcessPolicy
from refundry.services.cases.opening import CaseDesk, CaseRate, check_case_rate, open_case
from refundry.services.cases.process import Actor
from refundry.services.errors import RateLimited
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ORDERS = (ex.THRESHOLD, ex.CASHBACK, ex.GIFT)
CUSTOMER = Actor("customer", ex.CUSTOMER)
RATE = CaseRate(limit=1, window=timedelta(hours=1))


@pytest.fixture()
def desk(engine: Engine) -> CaseDesk:
    with UnitOfWork(engine) as uow:
        for doc in ORDERS:
            envelope = {"order": doc, "customer": {"points_balance": 0}}
            ingest_order(uow.conn, envelope, policy=Policy(), now=NOW - timedelta(days=200))
        uow.commit()
    # No one-time codes in the way: this is about the count.
    process = replace(ProcessPolicy(), identity=IdentityPolicy(otp_above_amount=10**12))
    return CaseDesk(engine, Policy(), process)


def _request(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": doc["id"],
        "reason": "changed_mind",
        "kind": "return_and_refund",
        "return_method": "self_ship",
        "lines": [{"line_id": doc["lines"][0]["id"], "quantity": 1}],
    }


def _race(desk: CaseDesk, naive: bool) -> tuple[int, int]:
    """Open one case per order, all released together: (opened, refused with rate.limited)."""
    barrier = threading.Barrier(len(ORDERS))
    outcomes: list[str] = []

    def one(doc: dict[str, Any]) -> None:
        barrier.wait()
        try:
            if naive:
                with UnitOfWork(desk.engine, readonly=True) as uow:
                    check_case_rate(uow.conn, CUSTOMER.id, NOW, RATE)
                open_case(desk, actor=CUSTOMER, request=_request(doc), now=NOW)
            else:
                open_case(desk, actor=CUSTOMER, request=_request(doc), now=NOW, rate=RATE)
            outcomes.append("opened")
        except RateLimited:
            outcomes.append("limited")

    threads = [threading.Thread(target=one, args=(doc,)) for doc in ORDERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with UnitOfWork(desk.engine, readonly=True) as uow:
        stored = uow.conn.execute(select(func.count()).select_from(cases)).scalar_one()
    assert stored == outcomes.count("opened")
    return outcomes.count("opened"), outcomes.count("limited")


def test_the_naive_check_lets_concurrent_requests_past_the_limit(desk: CaseDesk) -> None:
    """Proves the race test can fail: every request counts before any case is committed."""
    opened, _ = _race(desk, naive=True)
    assert opened > RATE.limit


def test_open_case_counts_under_the_customers_lock(desk: CaseDesk) -> None:
    assert _race(desk, naive=False) == (RATE.limit, len(ORDERS) - RATE.limit)


def test_the_refusal_says_when_to_come_back(desk: CaseDesk) -> None:
    open_case(desk, actor=CUSTOMER, request=_request(ORDERS[0]), now=NOW, rate=RATE)
    later = NOW + timedelta(minutes=20)
    with pytest.raises(RateLimited) as refused:
        open_case(desk, actor=CUSTOMER, request=_request(ORDERS[1]), now=later, rate=RATE)
    assert refused.value.retry_after == 40 * 60
    # An agent opening a case for the customer is not counted against it here.
    agent = Actor("agent", "li")
    open_case(desk, actor=agent, request=_request(ORDERS[1]), now=later, rate=RATE)
