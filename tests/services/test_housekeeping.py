"""Expired API idempotency keys are deleted by the worker, the others kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from refundry.services.operations.housekeeping import API_KEY_TTL, sweep_api_keys
from refundry.services.uow import UnitOfWork
from refundry.store.tables import api_idempotency

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _keys(engine: Engine) -> set[str]:
    with UnitOfWork(engine, readonly=True) as uow:
        return set(uow.conn.execute(select(api_idempotency.c.key)).scalars())


def test_keys_older_than_the_ttl_go_in_batches_the_rest_stay(engine: Engine) -> None:
    ages = {
        "old-1": API_KEY_TTL + timedelta(days=3),
        "old-2": API_KEY_TTL + timedelta(hours=1),
        "old-3": API_KEY_TTL + timedelta(seconds=1),
        "old-in-flight": API_KEY_TTL + timedelta(days=1),  # its request died long ago
        "edge": API_KEY_TTL,  # exactly 48 h: still answers
        "fresh": timedelta(minutes=5),
    }
    with UnitOfWork(engine) as uow:
        uow.conn.execute(
            insert(api_idempotency),
            [
                {
                    "key": key,
                    "request_hash": "sha256:x",
                    "state": "in_flight" if key == "old-in-flight" else "done",
                    "status": None if key == "old-in-flight" else 201,
                    "body": "{}",
                    "created_at": NOW - age,
                }
                for key, age in ages.items()
            ],
        )
        uow.commit()
    assert sweep_api_keys(engine, now=NOW, batch=2) == 4  # three rounds: 2, 2, 0
    assert _keys(engine) == {"edge", "fresh"}
    assert sweep_api_keys(engine, now=NOW) == 0
