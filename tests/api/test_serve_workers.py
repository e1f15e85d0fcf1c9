"""``refundry serve --workers 2`` on PostgreSQL, as an operator starts it: /metrics answers the
HTTP figures of the whole server, whichever worker the scrape reaches."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from refundry.api.auth import issue_token
from refundry.store.migrate import upgrade
from tests.api.conftest import production_env
from tests.api.test_real_server import _free_port
from tests.tools import serving

SECRET = "workers-test-secret"
STARTUP_SECONDS = 60
HEALTH = re.compile(
    r'^refundry_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', re.M
)


@pytest.fixture()
def two_workers(pg_url: str, tmp_path: Path) -> Iterator[str]:
    from tests.conftest import _drop_pg, _fresh_pg

    url = _fresh_pg(pg_url)
    upgrade(url)
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, **production_env(SECRET)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "refundry.cli", "serve", "--workers", "2", "--url", url]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    try:
        with serving(
            command,
            env=env,
            port=port,
            log=log,
            startup_seconds=STARTUP_SECONDS,
            stop_seconds=20,
            poll_seconds=0.2,
        ) as base:
            yield base
    finally:
        _drop_pg(url)


def _health_count(base: str) -> float:
    token = issue_token(SECRET.encode(), role="admin", subject="prometheus", now=datetime.now(UTC))
    # A new connection for each scrape, so the kernel may hand it to either worker.
    r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    found = HEALTH.search(r.text)
    assert found is not None, r.text[-3000:]
    return float(found.group(1))


def test_every_scrape_counts_the_requests_of_both_workers(two_workers: str) -> None:
    before = {_health_count(two_workers) for _ in range(6)}
    assert len(before) == 1, before  # every worker answers the same sum
    for _ in range(40):
        assert httpx.get(f"{two_workers}/healthz", timeout=10).status_code == 200
    after = {_health_count(two_workers) for _ in range(6)}
    assert after == {before.pop() + 40}
