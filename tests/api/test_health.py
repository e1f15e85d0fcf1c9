"""/healthz (alive) and /readyz (database, schema, worker heartbeat) on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from refundry.adapters.clock import ManualClock
from refundry.api.app import create_app
from refundry.bootstrap import build
from refundry.settings import Settings
from refundry.store.migrate import head_revision, upgrade
from refundry.worker import Worker

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_readyz_needs_a_worker_that_beats_recently(db_url: str) -> None:
    clock = ManualClock(START)
    runtime = build(Settings(dev=True, database_url=db_url), clock=clock)
    app = create_app(runtime=runtime)
    with TestClient(app) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {
            "database": "ok",
            "schema": "ok",
            "worker": "no worker has run (`refundry worker`)",
        }
        worker = Worker(desk=runtime.desk, relay=runtime.relay(), clock=clock, name="w-1")
        worker.run_once()
        r = client.get("/readyz")
        assert (r.status_code, r.json()["status"]) == (200, "ready")
        clock.advance(timedelta(seconds=61))
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["worker"] == (
            "the last worker round was 61 s ago (more than 60 s)"
        )
        assert client.get("/healthz").status_code == 200  # alive all along
    runtime.dispose()


def test_readyz_refuses_a_schema_behind_the_newest_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    upgrade(url, revision="0006")
    app = create_app(Settings(dev=True, database_url=url), schema_check=False)
    with TestClient(app) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        newest = head_revision()
        assert r.json()["checks"]["schema"].startswith(f"at 0006, not the newest {newest}")
        assert client.get("/healthz").status_code == 200
