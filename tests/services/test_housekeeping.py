"""Expired API idempotency keys and ended passkey challenges are deleted by the worker, the
others kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from refundry.services.operations.housekeeping import (
    API_KEY_TTL,
    sweep_api_keys,
    sweep_passkey_challenges,
)
from refundry.services.uow import UnitOfWork
from refundry.store.tables import api_idempotency, passkey_challenges

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


def test_passkey_challenges_go_a_day_after_they_ended(engine: Engine) -> None:
    ends = {
        "ended-long-ago": NOW - timedelta(days=3),
        "ended-a-day-ago": NOW - timedelta(days=1, seconds=1),
        "ended-today": NOW - timedelta(hours=2),  # kept for an inquiry
        "running": NOW + timedelta(minutes=1),
    }
    with UnitOfWork(engine) as uow:
        uow.conn.execute(
            insert(passkey_challenges),
            [
                {
                    "challenge": name,
                    "purpose": "case.submit",
                    "created_at": end - timedelta(minutes=2),
                    "expires_at": end,
                }
                for name, end in ends.items()
            ],
        )
        uow.commit()
    assert sweep_passkey_challenges(engine, now=NOW, batch=1) == 2
    with UnitOfWork(engine, readonly=True) as uow:
        left = set(uow.conn.execute(select(passkey_challenges.c.challenge)).scalars())
    assert left == {"ended-today", "running"}
