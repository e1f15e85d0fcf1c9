"""One-row reads for code that runs on the server's event loop, on PostgreSQL without blocking it.

The HTTP shell answers a kept page (refundry/web/kept_pages.py) on the event loop, and its only
database work is one primary-key read. Through the engine that read is a pool checkout, a
BEGIN, the SELECT and a ROLLBACK: ~200 µs on PostgreSQL during which the loop serves nobody.
``LoopReads`` keeps a few psycopg ``AsyncConnection`` s in autocommit (the SELECT alone, one
round trip) and awaits the answer, so the loop goes on with other requests meanwhile. The app's
lifespan opens them on the loop that serves (``open``; each connects when first used) and
closes them with it; with no lifespan (an app called without one) or on SQLite, ``read_one``
raises ``LookupError`` and the caller reads the usual way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
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

    async def read_one(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of ``sql`` (psycopg's placeholders: ``%s``, ``%(name)s``); None when
        there is no row. Raises ``LookupError`` when not serving (the caller reads the usual
        way), and the driver's error when the database does not answer (that slot reconnects
        next time)."""
        slots = self._slots
        if slots is None or not self.serving:
            raise LookupError("no loop connections")
        conn = await slots.get()
        try:
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(self._conninfo(), autocommit=True)
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
        except BaseException:
            if conn is not None:
                await conn.close()
            slots.put_nowait(None)
            raise
        slots.put_nowait(conn)
        return row

    def _conninfo(self) -> str:
        url = self._engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)
