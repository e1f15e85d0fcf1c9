"""16 client processes race for the same units through HTTP (issue 15 point 7): ``refundry serve
--workers 2`` on PostgreSQL with two ``refundry worker`` processes beside it, each client its
own process and connection, released together at a barrier, each with its own
Idempotency-Key, applying the same previewed plan with ``POST /v1/orders/{id}/refunds``.
Exactly one refund, every ledger balances (tests/services/test_races.py's ``violations``:
units, tenders, outbox, ledgers, audit); and the two workers, both polling the outbox while the
race runs, ask the gateway (its HTTP sandbox, one process both talk to) for the card's money
once: one refund object of the card's share, its outbox message done.

The same race against the naive apply (read, then write absolute values without lock or guard;
switched on in each server worker by tests/api/race_server.py) must show the over-refund, which
proves this HTTP race can catch it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from refundry.adapters.gateway_http_sandbox import serve_sandbox_http
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.api.auth import issue_token
from refundry.bootstrap import audit_keys
from refundry.services.audit.keys import attach_keys
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.engine import make_engine
from refundry.store.migrate import upgrade
from refundry.store.tables import outbox
from tests.api.conftest import production_env
from tests.api.test_real_server import _free_port
from tests.services.test_races import (
    CARD_PAID,
    CONFLICT_CODES,
    NAIVE_ROUNDS,
    Race,
    new_race,
    violations,
)
from tests.tools import serving

SECRET = "http-race-secret"
GATEWAY_KEY = "http-race-gateway-key"
CLIENTS = 16
WORKERS = 2
DELIVERY_SECONDS = 90
STARTUP_SECONDS = 60
BARRIER_SECONDS = 60.0


def _client(base: str, path: str, body: dict[str, Any], key: str, barrier: Any, out: Any) -> None:
    """One racer: connect, wait for the others, POST once, report what the server said."""
    token = issue_token(SECRET.encode(), role="agent", subject=key, now=datetime.now(UTC))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            http.get("/healthz")  # the connection is open before the race starts
            barrier.wait(BARRIER_SECONDS)
            answer = http.post(path, json=body, headers=headers)
        found: dict[str, Any] = answer.json()
        if answer.status_code == 201:
            out.put(
                {
                    "outcome": "ok",
                    "refund_id": found["id"],
                    "replayed": answer.headers.get("idempotent-replayed") == "true",
                }
            )
        else:
            out.put(
                {
                    "outcome": "error",
                    "status": answer.status_code,
                    "code": found.get("code"),
                    "conflict": answer.status_code == 409,
                }
            )
    except Exception as exc:  # reported, never raised: the parent checks every racer
        out.put({"outcome": "crash", "message": repr(exc)})


def _race(base: str, order_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(CLIENTS), ctx.Queue()
    path = f"/v1/orders/{order_id}/refunds"
    procs = [
        ctx.Process(target=_client, args=(base, path, body, f"{order_id}-{i}", barrier, out))
        for i in range(CLIENTS)
    ]
    for p in procs:
        p.start()
    outcomes = []
    for _ in procs:
        try:
            outcomes.append(out.get(timeout=BARRIER_SECONDS + 90))
        except queue.Empty:
            break
    for p in procs:
        p.join(10)
    assert len(outcomes) == CLIENTS, outcomes
    return outcomes


def _serve(url: str, tmp: Path, *, naive: bool) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, **production_env(SECRET), "REFUNDRY_DATABASE_URL": url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    where = ("--host", "127.0.0.1", "--port", str(port))
    if naive:
        command = [sys.executable, "-m", "uvicorn", "--factory", "--workers", "2", *where]
        command.insert(4, "tests.api.race_server:naive_app_factory")
    else:
        command = [sys.executable, "-m", "refundry.cli", "serve", "--workers", "2", *where]
    log = tmp / f"serve-{'naive' if naive else 'locked'}.log"
    with serving(
        command,
        env=env,
        port=port,
        log=log,
        startup_seconds=STARTUP_SECONDS,
        stop_seconds=20,
        poll_seconds=0.2,
        cwd=Path(__file__).parents[2],
    ) as base:
        yield base


@pytest.fixture()
def database(pg_url: str) -> Iterator[str]:
    from tests.conftest import _drop_pg, _fresh_pg

    url = _fresh_pg(pg_url)
    upgrade(url)
    try:
        yield url
    finally:
        _drop_pg(url)


@contextmanager
def _workers(url: str, gateway_url: str, tmp: Path) -> Iterator[None]:
    """``refundry worker`` processes polling the outbox, sending refunds to the HTTP gateway."""
    env = {**os.environ, **production_env(SECRET), "REFUNDRY_DATABASE_URL": url}
    env.update(REFUNDRY_GATEWAY="http", REFUNDRY_GATEWAY_API_KEY=GATEWAY_KEY)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    procs = []
    try:
        for i in range(WORKERS):
            command = [sys.executable, "-m", "refundry.cli", "worker", "--interval", "0.2"]
            command += ["--name", f"race-worker-{i}", "--gateway-url", gateway_url]
            log = (tmp / f"worker-{i}.log").open("w", encoding="utf-8")
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        yield
        for p in procs:
            assert p.poll() is None, f"a worker exited: {(tmp / 'worker-0.log').read_text()}"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def _round(base: str, url: str, sandbox: SandboxGateway | None = None) -> list[str]:
    engine = make_engine(url)
    # The server signs its audit entries with the key production_env names; the check reads them.
    settings = Settings(database_url=url, audit_key=production_env(SECRET)["REFUNDRY_AUDIT_KEY"])
    attach_keys(engine, audit_keys(settings))
    try:
        race = new_race(engine)
        if sandbox is not None:
            sandbox.capture(f"card-{race.order_id}", CARD_PAID, "CNY")
        body = {**race.request, "expected_plan_hash": race.plan["plan_hash"]}
        outcomes = _race(base, race.order_id, body)
        # The service-level key check reads the racers' raw keys; the API stores each caller's
        # key scoped and hashed (services/refunds/resource.py), so that one check is left out.
        found = [
            v for v in violations(engine, race, outcomes) if "idempotency keys stored" not in v
        ]
        if sandbox is not None:
            found += _paid_out_once(engine, race, sandbox)
        return found
    finally:
        engine.dispose()


def _paid_out_once(engine: Any, race: Race, sandbox: SandboxGateway) -> list[str]:
    """Wait for the workers to deliver the refund's gateway message; the gateway holds one
    refund of the card's share for the card, whatever the two workers did."""
    card = f"card-{race.order_id}"
    (share,) = [t["amount"] for t in race.plan["tenders"] if t["tender_id"] == "T1"]
    deadline = time.monotonic() + DELIVERY_SECONDS
    statuses: list[str] = []
    while time.monotonic() < deadline:
        with UnitOfWork(engine, readonly=True) as uow:
            statuses = [
                row.status
                for row in uow.conn.execute(
                    select(outbox.c.status, outbox.c.payload).where(
                        outbox.c.topic == "gateway.refund"
                    )
                )
                if race.order_id in row.payload
            ]
        if statuses and all(status == "done" for status in statuses):
            break
        time.sleep(0.2)
    bad = []
    if statuses != ["done"]:
        bad.append(f"the gateway messages of the order are {statuses}, expected one done")
    made = [r for r in sandbox.ledger.refunds if r.transaction_id == card]
    if [r.amount for r in made] != [share]:
        bad.append(f"the gateway holds refunds {[r.amount for r in made]}, expected [{share}]")
    return bad


def test_sixteen_http_clients_get_exactly_one_refund(database: str, tmp_path: Path) -> None:
    sandbox = SandboxGateway(clock=lambda: datetime.now(UTC), confirm_after=timedelta(0))
    with serve_sandbox_http(sandbox, api_key=GATEWAY_KEY) as gateway:
        for base in _serve(database, tmp_path, naive=False):
            with _workers(database, gateway.url, tmp_path):  # started once the server answers
                assert _round(base, database, sandbox) == []
    assert CONFLICT_CODES  # every loser's code is one of these (checked by violations)


def test_the_http_race_catches_the_naive_apply(database: str, tmp_path: Path) -> None:
    found: list[str] = []
    for base in _serve(database, tmp_path, naive=True):
        for _ in range(NAIVE_ROUNDS):
            found = _round(base, database)
            if found:
                break
    assert any("racers succeeded" in v or "refunded" in v for v in found), found
