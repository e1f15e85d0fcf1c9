"""Two workers sweep the same timers at once: every due case moves exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from refundry.cli import app
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ExpressPolicy, ProcessPolicy
from refundry.services.cases.opening import CaseDesk, open_case
from refundry.services.cases.process import Actor
from refundry.services.cases.timers import TimerReport, run_timers
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.tables import case_events, cases

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
CASES = 12


def seed(engine: Engine) -> CaseDesk:
    desk = CaseDesk(
        engine, Policy(), ProcessPolicy(review_rules=(), express=ExpressPolicy(enabled=False))
    )
    with UnitOfWork(engine) as uow:
        for i in range(CASES):
            doc = ex.order(f"o-t{i}", [ex.line("A", 20000)], 20000, customer_id=f"c-t{i}")
            ingest_order(uow.conn, doc, policy=Policy(), now=START - timedelta(days=100))
        uow.commit()
    for i in range(CASES):
        opened = open_case(
            desk,
            actor=Actor("customer", f"c-t{i}"),
            now=START,
            request={
                "order_id": f"o-t{i}",
                "reason": "quality_issue",
                "kind": "return_and_refund",
                "lines": [{"line_id": "A", "quantity": 1}],
            },
        )
        assert opened.state == "under_review"
    return desk


def test_two_workers_approve_each_silent_case_once(db_url: str, engine: Engine) -> None:
    seed(engine)
    reports: list[TimerReport] = []
    barrier = threading.Barrier(2)

    def sweep(name: str) -> None:
        own = make_engine(db_url)  # each worker its own connections
        desk = CaseDesk(
            own, Policy(), ProcessPolicy(review_rules=(), express=ExpressPolicy(enabled=False))
        )
        barrier.wait()
        reports.append(run_timers(desk, now=START + timedelta(hours=49), worker=name))
        own.dispose()

    threads = [threading.Thread(target=sweep, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.approved for r in reports) == CASES
    with UnitOfWork(engine, readonly=True) as uow:
        per_case = uow.conn.execute(
            select(case_events.c.case_id, func.count())
            .where(case_events.c.action == "approve")
            .group_by(case_events.c.case_id)
        ).all()
        states = set(uow.conn.execute(select(cases.c.state)).scalars())
    assert sorted(n for _, n in per_case) == [1] * CASES
    assert states == {"awaiting_return"}


def test_worker_command_runs_one_round(db_url: str, engine: Engine) -> None:
    seed(engine)
    result = CliRunner().invoke(app, ["worker", "--once", "--dev", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert "messages handled" in result.stdout
