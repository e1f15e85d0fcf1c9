"""Crash safety: SIGKILL a worker at every registered fault point, restart it, and the end state
is the one an uninterrupted run reaches — no double refund, nothing lost, nothing told twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from refundry.adapters.gateway_http_sandbox import SandboxHttpServer, serve_sandbox_http
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.domain.policy import Policy
from refundry.services.audit.verify import verify_chain
from refundry.services.faults import FAULT_POINTS
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import preview_refund
from refundry.services.uow import UnitOfWork
from refundry.store import tables as t
from refundry.store.engine import make_engine
from refundry.store.migrate import upgrade
from tests.conftest import _fresh_pg

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER = "c-crash"


def order_doc() -> dict[str, Any]:
    """Coupon (expired by now: reissued), points paid and earned, cashback granted, a card."""
    return {
        "id": "o-crash",
        "customer_id": CUSTOMER,
        "currency": "CNY",
        "status": "delivered",
        "lines": [
            {"id": "A", "sku": "A", "quantity": 1, "unit_price": 60000},
            {"id": "B", "sku": "B", "quantity": 2, "unit_price": 30000},
        ],
        "adjustments": [
            {
                "id": "CPN",
                "kind": "coupon",
                "amount": 3000,
                "lines": ["A"],
                "source": {"type": "coupon", "id": "CP-9"},
            }
        ],
        "tenders": [
            {"id": "CARD", "kind": "external", "amount": 116000, "gateway_txn_id": "ch_crash"},
            {"id": "PTS", "kind": "points", "amount": 1000, "points": 1000},
        ],
        "points_earned": {"points": 900, "status": "granted"},
        "growth_value": 900,
        "campaigns": [
            {
                "id": "MF",
                "kind": "order_cashback",
                "tiers": [{"threshold": 100000, "reward": 10000}],
            }
        ],
        "rewards": [{"id": "RW", "campaign_id": "MF", "amount": 10000, "status": "granted"}],
    }


CUSTOMER_DOC = {
    "points_balance": 5000,
    "wallet_balance": 0,
    "locale": "en",
    "coupons": [{"id": "CP-9", "value": 3000, "valid_until": "2026-01-01T00:00:00+00:00"}],
}
REQUESTS = [
    {"order_id": "o-crash", "reason": "changed_mind", "lines": [{"line_id": "B", "quantity": 1}]},
    {
        "order_id": "o-crash",
        "reason": "quality_issue",
        "lines": [{"line_id": "A", "quantity": 1}, {"line_id": "B", "quantity": 1}],
    },
]


def fresh_db(tmp: Path, name: str, pg_url: str | None = None) -> str:
    url = _fresh_pg(pg_url) if pg_url else f"sqlite:///{tmp / (name + '.sqlite')}"
    upgrade(url)
    engine = make_engine(url)
    with UnitOfWork(engine) as uow:
        ingest_order(
            uow.conn,
            {"order": order_doc(), "customer": CUSTOMER_DOC},
            policy=Policy(),
            now=datetime.now(UTC),
        )
        uow.commit()
    engine.dispose()
    return url


def script_for(tmp: Path, pg_url: str | None) -> Path:
    """Preview both refunds on a scratch database (applying the first in between) so the
    workers apply exactly these plans."""
    from refundry.services.refunds.apply import apply_refund

    url = fresh_db(tmp, "planning", pg_url)
    engine = make_engine(url)
    at = datetime.now(UTC)
    steps: list[dict[str, Any]] = []
    for i, req in enumerate(REQUESTS):
        plan = preview_refund(engine, order_id="o-crash", request=req, policy=Policy(), now=at)
        apply_refund(
            engine,
            order_id="o-crash",
            request=req,
            expected_plan_hash=plan["plan_hash"],
            idempotency_key=f"plan-{i}",
            actor="t",
            now=at,
            policy=Policy(),
        )
        steps += [
            {
                "op": "apply",
                "order_id": "o-crash",
                "request": req,
                "key": f"apply-{i}",
                "plan_hash": plan["plan_hash"],
                "previewed_at": at.isoformat(),
            },
            {"op": "relay"},
        ]
    engine.dispose()
    path = tmp / "script.json"
    path.write_text(json.dumps(steps), encoding="utf-8")
    return path


def run_worker(
    url: str, gw: str, script: Path, events: Path, *, fault: str | None, log: Path
) -> int:
    args = [url, gw, str(script), str(events)]
    return run_armed("tests.services.crash_worker", args, fault=fault, log=log)


def run_armed(module: str, args: list[str], *, fault: str | None, log: Path) -> int:
    """Run ``python -m module args`` armed to die at ``fault`` (None: not armed), logging the
    points it reaches to ``log``; its exit status, 0 or -SIGKILL (anything else fails)."""
    env = {**os.environ, "REFUNDRY_FAULT_LOG": str(log), "PYTHONPATH": str(ROOT)}
    env.pop("REFUNDRY_FAULT", None)
    if fault:
        env["REFUNDRY_FAULT"] = fault
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr)
    return proc.returncode


def end_state(url: str, server: SandboxHttpServer, events: Path) -> dict[str, Any]:
    engine = make_engine(url)
    with UnitOfWork(engine, readonly=True) as uow:
        c = uow.conn
        seq = {r.id: r.seq for r in c.execute(select(t.refunds.c.id, t.refunds.c.seq))}

        def norm(value: Any) -> Any:
            for rid, n in seq.items():
                if isinstance(value, str):
                    value = value.replace(rid, f"refund#{n}")
            return value

        state = {
            "lines": sorted(
                c.execute(select(t.order_lines.c.line_id, t.order_lines.c.refunded_qty)).all()
            ),
            "tenders": sorted(
                c.execute(select(t.order_tenders.c.tender_id, t.order_tenders.c.refunded)).all()
            ),
            "refunds": sorted(
                c.execute(select(t.refunds.c.seq, t.refunds.c.status, t.refunds.c.total)).all()
            ),
            "refund_tenders": sorted(
                (seq[r.refund_id], r.tender_id, r.status, r.amount)
                for r in c.execute(select(t.refund_tenders))
            ),
            "balances": sorted(
                c.execute(select(t.ledger_accounts.c.id, t.ledger_accounts.c.balance)).all()
            ),
            "postings": len(c.execute(select(t.ledger_postings.c.id)).all()),
            "coupons": sorted(
                (norm(r.id), r.state, r.value) for r in c.execute(select(t.entitlements))
            ),
            "rewards": sorted(
                c.execute(
                    select(
                        t.campaign_rewards.c.id,
                        t.campaign_rewards.c.status,
                        t.campaign_rewards.c.reduced,
                    )
                ).all()
            ),
            "inbox": sorted((norm(r.key), r.template) for r in c.execute(select(t.inbox_messages))),
            "outbox": sorted((r.topic, norm(r.key), r.status) for r in c.execute(select(t.outbox))),
            "audit_ok": verify_chain(c).ok,
        }
    engine.dispose()
    ledger = server.sandbox.ledger
    state["gateway_refunded"] = dict(ledger.refunded)
    state["gateway_refunds_created"] = sorted(
        (norm(r.idempotency_key), r.amount) for r in ledger.requests if r.outcome == "created"
    )
    state["events"] = sorted(
        {norm(json.loads(x)["key"]) for x in events.read_text(encoding="utf-8").splitlines()}
    )
    return state


def run_to_the_end(
    tmp_path: Path, pg_url: str | None, script: Path, log: Path, name: str, fault: str | None
) -> dict[str, Any]:
    """The script on a fresh database (SIGKILLed at ``fault`` first, then run again whole)
    against a sandbox gateway over HTTP; the end state."""
    sandbox = SandboxGateway(clock=lambda: datetime.now(UTC), confirm_after=timedelta(0))
    sandbox.capture("ch_crash", 116000, "CNY")
    events = tmp_path / f"{name}.events.jsonl"
    events.touch()
    url = fresh_db(tmp_path, name, pg_url)
    with serve_sandbox_http(sandbox) as server:
        if fault is not None:
            code = run_worker(url, server.url, script, events, fault=fault, log=log)
            assert code == -signal.SIGKILL, f"{fault} was never reached"
        assert run_worker(url, server.url, script, events, fault=None, log=log) == 0
        return end_state(url, server, events)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_at_every_fault_point_reaches_the_uninterrupted_end_state(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    script = script_for(tmp_path, pg_url)
    log = tmp_path / "faults.log"

    def run(name: str, fault: str | None) -> dict[str, Any]:
        return run_to_the_end(tmp_path, pg_url, script, log, name, fault)

    expected = run("uninterrupted", None)
    card_refunded = dict(expected["tenders"])["CARD"]
    assert expected["gateway_refunded"] == {"ch_crash": card_refunded}
    assert len(expected["gateway_refunds_created"]) == 2  # one per apply, never more
    assert expected["audit_ok"] is True
    assert [r[1] for r in expected["refunds"]] == ["refunded", "refunded"]
    assert all(status == "done" for _, _, status in expected["outbox"])
    log.write_text("", encoding="utf-8")
    # request.* points: tests/api/test_idempotency_crashes.py; reversal.*: test_reversals.py;
    # bulk.*: a bulk refund's (tests/services/test_bulk_crashes.py)
    points = [p for p in FAULT_POINTS if not p.startswith(("request.", "reversal.", "bulk."))]
    for point in points:
        assert run(point.replace(".", "_"), point) == expected, point
    hit = set(log.read_text(encoding="utf-8").split())
    assert hit == set(points)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_while_a_rounds_refunds_are_sent_at_once_refunds_each_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Both applies first, then one relay round: their two gateway refunds are in flight at
    once (the relay's concurrency) and recorded in one transaction; a SIGKILL at each of the
    relay's points, then a restart, reaches the uninterrupted end state."""
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    script = script_for(tmp_path, pg_url)
    steps = json.loads(script.read_text(encoding="utf-8"))
    together = [s for s in steps if s["op"] == "apply"] + [{"op": "relay"}]
    script.write_text(json.dumps(together), encoding="utf-8")
    log = tmp_path / "faults.log"

    def run(name: str, fault: str | None) -> dict[str, Any]:
        return run_to_the_end(tmp_path, pg_url, script, log, name, fault)

    expected = run("uninterrupted", None)
    assert len(expected["gateway_refunds_created"]) == 2
    assert [r[1] for r in expected["refunds"]] == ["refunded", "refunded"]
    for point in ("relay.after_claim", "relay.after_send", "relay.after_record"):
        assert run(point.replace(".", "_"), point) == expected, point
