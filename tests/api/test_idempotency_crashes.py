"""Idempotency-Key after a crash (issue 16 point 4): a real ``refundry serve`` process is killed
with SIGKILL at each step of a request, a fresh one is started on the same database, and the
client's retry with the same key must end with exactly one case (one refund) and the right
answer, and never a 409 that lasts.

The steps (refundry/services/faults.py): ``request.before_commit`` — the use case's rows and the
key's mark written, not committed; ``request.after_commit`` — committed, the answer not stored;
``request.after_answer`` — the answer stored, not sent. Each runs for opening a case (the
customer) and for approving one (an agent: the refund is applied), on SQLite and PostgreSQL.
The lease is one second (``idempotency_lease_seconds``), so a retry within it is 409
``idempotency.in_flight`` with Retry-After, and after it the key is recovered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from refundry.api.auth import issue_token
from refundry.demo import worked_examples as ex
from refundry.store.engine import make_engine
from refundry.store.tables import api_idempotency, cases, refunds
from tests.api.conftest import production_env
from tests.api.test_real_server import POLICY, _free_port

SECRET = "crash-server-secret"
ROOT = Path(__file__).resolve().parents[2]
STEPS = ("request.before_commit", "request.after_commit", "request.after_answer")
KEY_STATE_AFTER = {
    "request.before_commit": "in_flight",  # nothing committed: the retry runs it again
    "request.after_commit": "committed",  # committed, answer lost: the retry rebuilds it
    "request.after_answer": "done",  # the answer stored: the retry replays it
}


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve(url: str, tmp: Path, fault: str | None, name: str) -> Served:
    policy = tmp / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    port = _free_port()
    log = tmp / f"{name}.log"
    argv = [
        sys.executable,
        "-m",
        "tests.api.crash_server",
        fault or "-",
        str(tmp / "faults.log"),
        "--port",
        str(port),
        "--url",
        url,
        "--policy",
        str(policy),
        "--set",
        "idempotency_lease_seconds=1",
    ]
    env = {**os.environ, **production_env(SECRET), "REFUNDRY_LOG_LEVEL": "warning"}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"refundry serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{served.base}/healthz", timeout=1).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            served.stop()
            pytest.fail(f"refundry serve did not answer: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def auth(role: str, subject: str) -> dict[str, str]:
    token = issue_token(SECRET.encode(), role=role, subject=subject, now=datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


def call(
    base: str, path: str, who: tuple[str, str], body: Any, key: str | None = None
) -> httpx.Response:
    headers = auth(*who) | ({"Idempotency-Key": key} if key else {})
    return httpx.post(base + path, json=body, headers=headers, timeout=30)


def retry_until_answered(base: str, path: str, who: tuple[str, str], body: Any, key: str) -> Any:
    """What a client does: retry with the same key, waiting as Retry-After says on 409."""
    deadline = time.monotonic() + 15
    while True:
        r = call(base, path, who, body, key)
        if r.status_code != 409 or time.monotonic() > deadline:
            return r
        assert r.json()["code"] == "idempotency.in_flight", r.text
        assert r.headers["retry-after"] == "1"
        time.sleep(0.2)


AGENT = ("agent", "li")


def scenario(url: str, tmp: Path, step: str, operation: str, n: int) -> None:
    order_id, customer = f"o-crash-{n}", f"c-crash-{n}"
    me = ("customer", customer)
    opening = {
        "order_id": order_id,
        "lines": [{"line_id": "Y", "quantity": 1}],
        "reason": "quality_issue",
        "kind": "refund_only",
    }
    key = f"key-{n}"
    dying = serve(url, tmp, step, f"{n}-dying")
    try:
        doc = {"order": {**ex.THRESHOLD, "id": order_id, "customer_id": customer}}
        assert call(dying.base, "/v1/orders", ("admin", "shop"), doc).status_code == 201
        if operation == "open":
            path, who, body = "/v1/cases", me, opening
        else:
            opened = call(dying.base, "/v1/cases", me, opening)  # no key: no fault point
            assert opened.status_code == 201, opened.text
            path, who, body = f"/v1/cases/{opened.json()['id']}/approve", AGENT, {"comment": "ok"}
        with pytest.raises(httpx.TransportError):
            call(dying.base, path, who, body, key)
        assert dying.proc.wait(timeout=10) == -signal.SIGKILL, f"{step} was never reached"
    finally:
        dying.stop()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            state = conn.execute(
                select(api_idempotency.c.state).where(api_idempotency.c.key.endswith(f":{key}"))
            ).scalar_one()
        # the key says what happened: the mark commits with the use case, or not at all
        assert state == KEY_STATE_AFTER[step], (step, operation, state)
        fresh = serve(url, tmp, None, f"{n}-fresh")
        try:
            r = retry_until_answered(fresh.base, path, who, body, key)
            again = call(fresh.base, path, who, body, key)  # and once more: the same answer
        finally:
            fresh.stop()
        with engine.connect() as conn:
            case_ids = (
                conn.execute(select(cases.c.id).where(cases.c.order_id == order_id)).scalars().all()
            )
            refund_count = conn.execute(
                select(func.count()).select_from(refunds).where(refunds.c.order_id == order_id)
            ).scalar_one()
    finally:
        engine.dispose()
    expected_status = 201 if operation == "open" else 200
    assert r.status_code == expected_status, (step, operation, r.status_code, r.text)
    assert len(case_ids) == 1, (step, operation, case_ids)  # exactly one case
    answer = r.json()
    assert answer["id"] == case_ids[0]
    if operation == "open":
        assert answer["state"] == "under_review" and refund_count == 0
    else:
        assert answer["state"] == "refunding" and answer["refund_id"]
        assert refund_count == 1, (step, refund_count)  # exactly one refund
    # before the commit nothing happened: the retry ran the request; after it, it is replayed
    replayed = r.headers.get("idempotent-replayed") == "true"
    assert replayed == (step != "request.before_commit"), (step, operation, r.headers)
    assert (again.status_code, again.json(), again.headers.get("idempotent-replayed")) == (
        expected_status,
        answer,
        "true",
    )


@pytest.mark.parametrize("operation", ["open", "approve"])
def test_a_request_killed_at_each_step_is_recovered_by_its_retry(
    db_url: str, tmp_path: Path, operation: str
) -> None:
    for n, step in enumerate(STEPS):
        scenario(db_url, tmp_path, step, operation, n)
    hit = set((tmp_path / "faults.log").read_text(encoding="utf-8").split())
    assert hit == set(STEPS)
