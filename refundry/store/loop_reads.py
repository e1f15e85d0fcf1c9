"""One-row reads for code that runs on the server's event loop, on PostgreSQL without blocking it.

The HTTP shell answers a kept page (refundry/web/kept_pages.py) on the event loop, and its only
database work is one primary-key read. Through the engine that read is a pool checkout, a
BEGIN, the SELECT and a ROLLBACK: ~200 µs on PostgreSQL during which the loop serves nobody.
``LoopReads`` keeps a few psycopg ``AsyncConnection`` s in autocommit (the SELECT alone, one
round trip) and awaits the answer, so the loop goes on with other requests meanwhile; the reads
asked for while the loop runs one round go out as one query. The app's
lifespan opens them on the loop that serves (``open``; each connects when first used) and
closes them with it; with no lifespan (an app called without one) or on SQLite, ``read_keyed``
raises ``LookupError`` and the caller reads the usual way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from sqlalchemy import Engine

__all__ = ["LoopReads"]


class LoopReads:
    def __init__(self, engine: Engine, *, connections: int = 4) -> None:
        self._engine = engine
        self._size = connections
        # a slot holds an open connection, or None: connect when next taken
        self._slots: asyncio.LifoQueue[psycopg.AsyncConnection[Any] | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # read_keyed's keys waiting for their query, per statement
        self._batches: dict[str, dict[str, list[asyncio.Future[tuple[Any, ...] | None]]]] = {}

    @property
    def serving(self) -> bool:
        """Open, and on the loop that is running now."""
        if self._slots is None:
            return False
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def open(self) -> None:
        """Make the slots (PostgreSQL only) on the running loop; connections open when used."""
        if self._engine.dialect.name != "postgresql" or self._size <= 0:
            return
        slots: asyncio.LifoQueue[psycopg.AsyncConnection[Any] | None] = asyncio.LifoQueue()
        for _ in range(self._size):
            slots.put_nowait(None)
        self._slots, self._loop = slots, asyncio.get_running_loop()

    async def close(self) -> None:
        slots, self._slots, self._loop = self._slots, None, None
        while slots is not None and not slots.empty():
            conn = slots.get_nowait()
            if conn is not None:
                await conn.close()

    async def read_keyed(self, sql: str, key: str) -> tuple[Any, ...] | None:
        """The row of ``sql`` whose first column is ``key``, None when there is none. ``sql``
        takes one parameter, ``%(keys)s``: the list of keys (``… WHERE k = ANY(%(keys)s)``).
        The keys asked for while the loop runs one round go out in one query when it ends:
        under load, one round trip and one parse for many requests instead of one each (the
        read is still made after each of them was asked). Raises ``LookupError`` when not
        serving (the caller reads the usual way), and the driver's error when the database does
        not answer (that slot reconnects next time)."""
        if self._slots is None or not self.serving:
            raise LookupError("no loop connections")
        batch = self._batches.get(sql)
        if batch is None:
            batch = self._batches[sql] = {}
            asyncio.get_running_loop().create_task(self._read_batch(sql))
        found: asyncio.Future[tuple[Any, ...] | None] = asyncio.get_running_loop().create_future()
        batch.setdefault(key, []).append(found)
        return await found

    async def _read_batch(self, sql: str) -> None:
        batch = self._batches.pop(sql)  # later keys start the next batch
        slots = self._slots
        try:
            if slots is None:
                raise LookupError("no loop connections")
            conn = await slots.get()
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(self._conninfo(), autocommit=True)
                cursor = await conn.execute(sql, {"keys": list(batch)})
                rows = {row[0]: row for row in await cursor.fetchall()}
            except BaseException:
                if conn is not None:
                    await conn.close()
                slots.put_nowait(None)
                raise
            slots.put_nowait(conn)
        except BaseException as failed:
            for waiting in batch.values():
                for found in waiting:
                    if not found.done():
                        found.set_exception(failed)
            if not isinstance(failed, Exception):
                raise
            return
        for key, waiting in batch.items():
            for found in waiting:
                if not found.done():
                    found.set_result(rows.get(key))

    def _conninfo(self) -> str:
        url = self._engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)
