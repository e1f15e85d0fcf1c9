"""Outside programs some tests run, found on PATH or where `make test` unpacks them (.tools/);
the service tests' runtime, built by the bootstrap (``runtime_for``); and a server process
started and stopped around a test (``serving``); the SQL an engine ran meanwhile
(``statements``).

A missing tool skips its test with a line saying how to get it; under CI=true it fails the run,
like a missing database server (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, event

from refundry.adapters.events import RecordingPublisher
from refundry.adapters.gateway import PaymentGateway
from refundry.bootstrap import Runtime, build
from refundry.services.ports import EventPublisher
from refundry.settings import Settings

ROOT = Path(__file__).parent.parent
TOOLS = ROOT / ".tools" / "usr" / "bin"


def promtool() -> str:
    """Prometheus's promtool (Debian's `prometheus` package; `make tools` unpacks it)."""
    found = shutil.which("promtool") or (
        str(TOOLS / "promtool") if (TOOLS / "promtool").is_file() else None
    )
    if found is None:
        message = "promtool not found: run `make tools` (unpacks Debian's prometheus package)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: a missing tool is a failure)")
        pytest.skip(message)
    return found


def runtime_for(
    engine: Engine,
    *,
    clock: Callable[[], datetime],
    gateway: PaymentGateway,
    publisher: EventPublisher | None = None,
) -> Runtime:
    """The service tests' runtime, built by the one bootstrap like serve, worker and the demo:
    dev settings on the test's (already migrated) database, with the test's own sandboxes
    passed in as the bootstrap's keyword adapters (a gateway holding the test's charges, a
    publisher the test reads)."""
    url = engine.url.render_as_string(hide_password=False)
    return build(
        Settings(dev=True, database_url=url),
        clock=clock,
        engine=engine,
        gateway=gateway,
        publisher=publisher or RecordingPublisher(),
    )


@contextmanager
def serving(
    command: list[str],
    *,
    env: dict[str, str],
    port: int,
    log: Path,
    startup_seconds: float,
    stop_seconds: float = 10,
    poll_seconds: float = 0.1,
    cwd: Path | None = None,
) -> Iterator[str]:
    """Start ``command`` (a server on 127.0.0.1:``port``, its output in ``log``), yield its
    base URL once ``/healthz`` answers 200, and stop it afterwards (terminate, then kill after
    ``stop_seconds``). The test fails, with the log's end, if the process exits first or does
    not answer within ``startup_seconds``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{command[2]} exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer in {startup_seconds} s: {log.read_text()[-2000:]}")
            time.sleep(poll_seconds)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` meanwhile (the driver-cursor ones included)."""
    seen: list[str] = []

    def record(conn: object, cursor: object, sql: str, *args: object) -> None:
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def refund_lines(engine: Engine, order_id: str, *line_ids: str, now: datetime) -> str:
    """Preview and apply a refund of one of each line of the order (the 满减 worked example's
    request shape), as an agent, under the policy's defaults; returns the refund's id."""
    from refundry.demo import worked_examples as ex
    from refundry.domain.policy import Policy
    from refundry.services.refunds.apply import apply_refund, preview_refund

    req = {**ex.request(order_id, *line_ids), "order_id": order_id}
    plan = preview_refund(engine, order_id=order_id, request=req, policy=Policy(), now=now)
    return apply_refund(
        engine,
        order_id=order_id,
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key=f"k-{order_id}",
        actor="agent:a",
        now=now,
        policy=Policy(),
    ).refund_id
