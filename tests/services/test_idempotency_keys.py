"""The Idempotency-Key store's lease and fencing (issue 16 point 4), on both backends.

A key whose request died is taken over once its lease has run out, unless the request's use
case committed (the mark is written in the use case's own transaction): then the next request
is told so, with what it created. A request whose lease ran out and whose key was taken over
cannot commit any more (its unit of work finds another token and rolls back). The same steps
with real server processes killed by SIGKILL: tests/api/test_idempotency_crashes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, select

from refundry.services.claims import CURRENT, Claim, LeaseLost, note_outcome
from refundry.services.idempotency_keys import Earlier, claim_key, finish_key, take_over
from refundry.services.uow import UnitOfWork
from refundry.store.tables import api_idempotency, worker_heartbeats

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TTL, LEASE = timedelta(hours=48), timedelta(seconds=10)


def claim(engine: Engine, at: datetime, digest: str = "d1") -> Claim | Earlier:
    return claim_key(engine, key="k", request_hash=digest, now=at, ttl=TTL, lease=LEASE)


def write_under(engine: Engine, held: Claim, name: str, outcome: str | None = None) -> None:
    """A use case's transaction run by the request holding ``held``."""
    reset = CURRENT.set(held)
    try:
        with UnitOfWork(engine) as uow:
            uow.conn.execute(insert(worker_heartbeats).values(name=name, beat_at=NOW, rounds=1))
            if outcome:
                note_outcome(outcome)
            uow.commit()
    finally:
        CURRENT.reset(reset)


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(worker_heartbeats)).scalar_one())


def test_a_key_whose_request_died_before_committing_is_taken_over_after_its_lease(
    engine: Engine,
) -> None:
    first = claim(engine, NOW)
    assert isinstance(first, Claim)
    assert claim(engine, NOW + LEASE / 2) == Earlier("in_flight")  # within the lease: running
    second = claim(engine, NOW + LEASE)  # it died: taken over, with a token of its own
    assert isinstance(second, Claim) and second.token != first.token
    # the first request was only slow: it cannot commit now, and nothing of it is written
    with pytest.raises(LeaseLost) as lost:
        write_under(engine, first, "first")
    assert lost.value.code == "idempotency.lease_lost"
    assert rows(engine) == 0
    write_under(engine, second, "second")
    finish_key(engine, claim=first, status=201, body=b'{"late": true}')  # fenced out: no effect
    finish_key(engine, claim=second, status=201, body=b'{"id": "second"}')
    assert claim(engine, NOW + LEASE * 3) == Earlier("replay", 201, b'{"id": "second"}')
    assert rows(engine) == 1


def test_a_key_whose_request_committed_names_its_outcome_and_is_never_run_twice(
    engine: Engine,
) -> None:
    first = claim(engine, NOW)
    assert isinstance(first, Claim)
    write_under(engine, first, "case", outcome="CS-1")  # committed; the answer never stored
    assert claim(engine, NOW + LEASE / 2) == Earlier("in_flight")
    found = claim(engine, NOW + LEASE)
    assert found == Earlier("committed", outcome="CS-1", token=first.token)
    assert claim(engine, NOW + LEASE, digest="other") == Earlier("reused")
    # a POST that cannot be rebuilt runs again under a new token, once
    assert isinstance(found, Earlier)
    again = take_over(engine, key="k", token=found.token, now=NOW + LEASE, lease=LEASE)
    assert isinstance(again, Claim)
    assert take_over(engine, key="k", token=found.token, now=NOW + LEASE, lease=LEASE) is None


def test_a_5xx_after_the_commit_keeps_the_key_for_a_rebuild_at_once(engine: Engine) -> None:
    first = claim(engine, NOW)
    assert isinstance(first, Claim)
    write_under(engine, first, "case", outcome="CS-2")
    finish_key(engine, claim=first, status=500, body=b"")  # e.g. the answer failed to render
    assert claim(engine, NOW) == Earlier("committed", outcome="CS-2", token=first.token)
    with engine.connect() as conn:
        assert conn.execute(select(api_idempotency.c.state)).scalar_one() == "committed"


def test_a_key_stored_with_the_old_raw_digest_still_matches(engine: Engine) -> None:
    first = claim_key(engine, key="k", request_hash="raw", now=NOW, ttl=TTL, lease=LEASE)
    assert isinstance(first, Claim)
    finish_key(engine, claim=first, status=200, body=b"{}")
    found = claim_key(
        engine, key="k", request_hash=("c1:new", "raw"), now=NOW, ttl=TTL, lease=LEASE
    )
    assert found == Earlier("replay", 200, b"{}")
