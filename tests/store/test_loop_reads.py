"""LoopReads on PostgreSQL (refundry/store/loop_reads.py): the keys asked for in one round of the
event loop are read with one query, each asker gets its own row (or None), a failure reaches
every asker of the batch, and the slot connects again afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, insert

from refundry.services.customers.version import _HEADS_PG
from refundry.store.loop_reads import LoopReads
from refundry.store.tables import audit_heads

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _heads(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(audit_heads),
            [{"chain": f"c-{n}", "seq": n * 10, "hash": "0" * 64} for n in range(count)],
        )


def test_keys_asked_at_once_are_read_in_one_query(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _heads(engine, 20)
    sent: list[Any] = []
    execute = psycopg.AsyncConnection.execute

    async def counted(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        sent.append(params)
        return await execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", counted)
    keys = [f"c-{n % 25}" for n in range(60)]  # 20 known, 5 unknown, each asked 2-3 times

    async def run() -> list[Any]:
        reads = LoopReads(engine)
        await reads.open()
        try:
            together = await asyncio.gather(*(reads.read_keyed(_HEADS_PG, k) for k in keys))
            alone = await reads.read_keyed(_HEADS_PG, "c-7")  # a later round: its own query
            return [*together, alone]
        finally:
            await reads.close()

    rows = asyncio.run(run())
    assert len(sent) == 2, sent
    assert sorted(sent[0]["keys"]) == sorted(set(keys))
    for key, row in zip([*keys, "c-7"], rows, strict=True):
        n = int(key.split("-")[1])
        assert (row is None) if n >= 20 else (tuple(row) == (key, n * 10)), (key, row)


def test_a_failed_batch_fails_each_asker_and_the_slot_connects_again(engine: Engine) -> None:
    _heads(engine, 3)

    async def run() -> tuple[list[Any], Any]:
        reads = LoopReads(engine, connections=1)
        await reads.open()
        try:
            await reads.read_keyed(_HEADS_PG, "c-1")  # the slot's connection is open
            with engine.connect() as conn:  # the server drops it
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            failed = await asyncio.gather(
                *(reads.read_keyed(_HEADS_PG, k) for k in ("c-0", "c-1", "c-2")),
                return_exceptions=True,
            )
            return failed, await reads.read_keyed(_HEADS_PG, "c-2")
        finally:
            await reads.close()

    failed, again = asyncio.run(run())
    assert all(isinstance(f, psycopg.Error) for f in failed), failed
    assert tuple(again) == ("c-2", 20)


def test_without_serving_the_caller_reads_the_usual_way(engine: Engine) -> None:
    reads = LoopReads(engine)  # never opened

    async def ask() -> Any:
        return await reads.read_keyed(_HEADS_PG, "c-0")

    with pytest.raises(LookupError):
        asyncio.run(ask())
