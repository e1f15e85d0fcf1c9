"""A bulk refund killed at any point and started again refunds every order once: SIGKILL at each
bulk fault point (a worker process), and a real SIGKILL of `refundry bulk-refund` mid-run, on
SQLite and PostgreSQL. The end state is the uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from refundry.services.audit.verify import verify_chain
from refundry.services.faults import FAULT_POINTS
from refundry.services.uow import UnitOfWork
from refundry.store import tables as t
from refundry.store.engine import make_engine
from refundry.store.migrate import upgrade
from tests.conftest import _fresh_pg
from tests.services.bulk_world import PAID, ingest, order_doc
from tests.services.test_crashes import run_armed

ROOT = Path(__file__).resolve().parents[2]
BULK_POINTS = [p for p in FAULT_POINTS if p.startswith("bulk.")]


def fresh_db(tmp: Path, name: str, pg_url: str | None, orders: int) -> str:
    url = _fresh_pg(pg_url) if pg_url else f"sqlite:///{tmp / (name + '.sqlite')}"
    upgrade(url)
    engine = make_engine(url)
    docs = [order_doc(i, with_points=i % 3 == 0, campaign=i % 2 == 0) for i in range(orders)]
    ingest(engine, docs, now=PAID)
    engine.dispose()
    return url


def end_state(url: str) -> dict[str, Any]:
    """Everything a refund moves, with the refunds' random ids left out."""
    engine = make_engine(url)
    with UnitOfWork(engine, readonly=True) as uow:
        c = uow.conn

        def rows(*columns: Any) -> list[Any]:
            return sorted(c.execute(select(*columns)).all())

        lines, tenders, jo = t.order_lines.c, t.order_tenders.c, t.bulk_job_orders.c
        job = t.bulk_jobs.c
        state = {
            "lines": rows(lines.order_id, lines.line_id, lines.refunded_qty),
            "tenders": rows(tenders.order_id, tenders.tender_id, tenders.refunded),
            "refunds": rows(
                t.refunds.c.order_id, t.refunds.c.seq, t.refunds.c.status, t.refunds.c.total
            ),
            "balances": rows(t.ledger_accounts.c.id, t.ledger_accounts.c.balance),
            "postings": c.execute(select(func.count()).select_from(t.ledger_postings)).scalar(),
            "outbox": sorted(
                c.execute(select(t.outbox.c.topic, func.count()).group_by(t.outbox.c.topic)).all()
            ),
            "job": rows(job.state, job.total, job.done, job.refunded, job.refused, job.skipped),
            "outcomes": rows(jo.order_id, jo.state, jo.code, jo.total),
            "audit_ok": verify_chain(c).ok,
        }
        # each refund's outcome row names it, and it is the order's only refund
        named = c.execute(select(jo.refund_id).where(jo.state == "refunded")).scalars().all()
        stored = c.execute(select(t.refunds.c.id)).scalars().all()
        assert sorted(named) == sorted(stored)
    engine.dispose()
    return state


def run_worker(url: str, selector: Path, *, fault: str | None, log: Path) -> int:
    args = [url, str(selector)]
    return run_armed("tests.services.bulk_crash_worker", args, fault=fault, log=log)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_at_every_bulk_fault_point_refunds_each_order_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    selector = tmp_path / "selector.json"
    # 7 orders in batches of 3: the kill lands in the first batch, two more follow
    selector.write_text(
        json.dumps({"selector": {"sku": "RECALLED"}, "reason": "quality_issue", "batch": 3}),
        encoding="utf-8",
    )
    log = tmp_path / "faults.log"

    def run(name: str, fault: str | None) -> dict[str, Any]:
        url = fresh_db(tmp_path, name, pg_url, orders=7)
        if fault is not None:
            assert run_worker(url, selector, fault=fault, log=log) == -signal.SIGKILL, fault
        assert run_worker(url, selector, fault=None, log=log) == 0
        return end_state(url)

    expected = run("uninterrupted", None)
    assert expected["job"] == [("finished", 7, 7, 7, 0, 0)]
    assert len(expected["refunds"]) == 7
    assert ("gateway.refund", 7) in expected["outbox"]
    assert expected["audit_ok"] is True
    log.write_text("", encoding="utf-8")
    for point in BULK_POINTS:
        assert run(point.replace(".", "_"), point) == expected, point
    assert set(log.read_text(encoding="utf-8").split()) == set(BULK_POINTS)


def _cli(url: str, tmp: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REFUNDRY_FAULT", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "refundry",
            "bulk-refund",
            "--url",
            url,
            "--dev",
            "--merchant",
            "m-1",
            "--reason",
            "quality_issue",
            "--batch",
            "10",
            "--report",
            str(tmp / "report.csv"),
            *extra,
        ],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _done(url: str) -> int:
    engine = make_engine(url)
    try:
        with UnitOfWork(engine, readonly=True) as uow:
            return int(uow.conn.execute(select(func.sum(t.bulk_jobs.c.done))).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_cli_killed_mid_run_and_run_again_refunds_each_order_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    n = 300
    url = fresh_db(tmp_path, "cli", pg_url, orders=n)
    first = _cli(url, tmp_path, "--rate", "150")  # ~2 s: time to be killed mid-run
    deadline = time.monotonic() + 120
    while _done(url) < 30:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = _done(url)
    assert 30 <= killed_at < n, killed_at
    again = _cli(url, tmp_path)  # the same command finds the job and goes on
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "found (going on)" in out and f"{killed_at} of {n} done" in out
    state = end_state(url)
    assert state["job"] == [("finished", n, n, n, 0, 0)]
    assert len(state["refunds"]) == n  # one refund per order, never two
    assert {(o, line): q for o, line, q in state["lines"] if line == "R"} == {
        (f"o-{i:05d}", "R"): 2 for i in range(n)
    }
    assert all(q == 0 for _, line, q in state["lines"] if line == "K")
    assert ("gateway.refund", n) in state["outbox"]
    assert state["audit_ok"] is True
    report = (tmp_path / "report.csv").read_text(encoding="utf-8").splitlines()
    assert len(report) == n + 1 and all(",refunded," in row for row in report[1:])
