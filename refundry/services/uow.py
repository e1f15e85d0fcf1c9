"""One use case, one transaction: commit explicitly, roll back otherwise."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, event

from refundry.services.claims import CURRENT, mark_committed
from refundry.services.faults import fault_point
from refundry.store.engine import SQLITE_BEGIN
from refundry.store.prepared import driver_in_transaction, run_driver_sql

__all__ = ["SPARE_SQLITE_CONNECTIONS", "UnitOfWork"]

# SQLite: connections a finished unit of work keeps open for the next one, per engine. Checking
# a connection out of SQLAlchemy's pool and back in cost more than the rest of a read-only unit
# (bench/apply_bench.py: 0.31M of 6.68M instructions a preview + apply, two units). More units
# at once than this check out of the pool as before.
SPARE_SQLITE_CONNECTIONS = 8


class _Spares:
    """An engine's kept connections, read-only and writing units alike (each unit chooses its
    BEGIN): a stack, so a preview and the apply after it run on the same connection and the
    apply's commit leaves that connection's page cache valid. A connection whose page cache
    another connection's commit made stale rereads its pages: the plan-inputs read of a preview
    took 55 µs instead of 34 when read-only units kept connections of their own.
    ``list.pop`` / ``append`` are atomic, so threads share it without a lock; a connection is in
    the list or in one unit of work, never both."""

    __slots__ = ("generation", "kept")

    def __init__(self) -> None:
        self.generation = _generation
        self.kept: list[Connection] = []

    def close(self) -> None:
        """Close the kept connections themselves (the engine's pool was just disposed: giving
        them back to it would not close them)."""
        kept = self.kept
        while kept:
            conn = kept.pop()
            conn.invalidate()  # closes the driver's connection
            conn.close()


# Bumped in a forked child: spares made before the fork belong to the parent, and a child never
# touches its parent's connections (an os.getpid() per unit of work cost 2% of a refund).
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def _spares_of(engine: Engine) -> _Spares | None:
    """The engine's spares in this process (None: PostgreSQL, which keeps using its pool: a
    pooled connection is checked at checkout after sitting idle, see store.engine)."""
    # On the engine itself (not in a map keyed by it): the kept connections refer to their
    # engine, and an engine dropped without dispose() must still be collected, as its pool is.
    spares: _Spares | None = getattr(engine, "_refundry_spares", None)
    if spares is not None and spares.generation == _generation:
        return spares
    if engine.dialect.name != "sqlite":
        return None
    fresh = _Spares()
    setattr(engine, "_refundry_spares", fresh)  # noqa: B010 (not an Engine attribute)
    event.listen(engine, "engine_disposed", lambda _engine: fresh.close())
    return fresh


class UnitOfWork:
    """``with UnitOfWork(engine) as uow: ...; uow.commit()``.

    On SQLite a writing unit starts with BEGIN IMMEDIATE (the write lock is taken before the
    first read); ``readonly=True`` starts a deferred transaction that never blocks writers.
    A read-only unit ends with COMMIT (see ``__exit__``), any other unit left without
    ``commit()`` rolls back.

    On SQLite the connection stays open for the next unit of work (``SPARE_SQLITE_CONNECTIONS``),
    unless the unit changed its execution options or it was invalidated; ``engine.dispose()``
    closes the kept ones. There the transaction is begun and ended on the driver itself; a
    statement run through ``conn.execute()`` (or ``begin_nested()``) makes SQLAlchemy begin its
    own transaction on top, which the unit then ends through SQLAlchemy. So the engine's
    ``begin`` / ``commit`` events are not called for a unit that runs only prepared statements.
    """

    __slots__ = ("_engine", "_kept", "_open", "_options", "_readonly", "_tx", "conn")

    def __init__(self, engine: Engine, *, readonly: bool = False) -> None:
        self._engine = engine
        self._readonly = readonly
        self._tx: RootTransaction | None = None
        self._kept: list[Connection] | None = None
        self._options: Any = None
        self._open = False  # SQLite: a transaction begun on the driver, not through SQLAlchemy
        self.conn: Connection

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def __enter__(self) -> UnitOfWork:
        spares = _spares_of(self._engine)
        if spares is not None:
            self._kept = spares.kept
        conn = self._kept.pop() if self._kept else self._engine.connect()
        if conn._echo != self._engine._should_log_info():
            # SQLAlchemy decides whether a connection logs its statements when it is made:
            # a kept one must not miss sqlalchemy.engine logging switched on (or off) since.
            conn.close()
            conn = self._engine.connect()
        self._options = conn.get_execution_options()
        self.conn = conn
        try:
            if self._kept is None:
                self._tx = conn.begin()
            else:
                # SQLite: BEGIN on the driver, without SQLAlchemy's transaction objects and
                # events (3% of a refund). A statement run through conn.execute() makes
                # SQLAlchemy begin its own transaction on top, whose BEGIN the engine's listener
                # then leaves out (store.engine); commit() and __exit__ end it through SQLAlchemy.
                run_driver_sql(conn, SQLITE_BEGIN["DEFERRED" if self._readonly else "IMMEDIATE"])
                self._open = True
        except BaseException:
            conn.close()  # e.g. "database is locked" after busy_timeout: __exit__ will not run
            raise
        return self

    def commit(self) -> None:
        # A request holding an Idempotency-Key marks it committed in this very transaction
        # (services/claims.py): one ContextVar read otherwise.
        claim = None if self._readonly else CURRENT.get()
        if claim is not None:
            mark_committed(self.conn, claim)
            fault_point("request.before_commit")
        if self._open:
            self._end("COMMIT")
        else:
            assert self._tx is not None
            self._tx.commit()
            self._tx = None
        if claim is not None:
            fault_point("request.after_commit")

    def _end(self, how: str) -> None:
        """End the driver-begun transaction; if that fails it stays open, and ``__exit__``
        rolls it back."""
        if self.conn.in_transaction():  # SQLAlchemy began one on top of ours: end it there
            if how == "COMMIT":
                self.conn.commit()
            else:
                self.conn.rollback()
        else:
            run_driver_sql(self.conn, how)
        self._open = False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, keep = self.conn, False
        try:
            if self._open:
                self._end("COMMIT" if self._readonly and exc_type is None else "ROLLBACK")
            elif self._tx is not None:
                if self._readonly and exc_type is None:
                    # A read ends with COMMIT, not ROLLBACK: the same for a transaction that
                    # wrote nothing, but psycopg drops every prepared statement of the
                    # connection on ROLLBACK (and sends DEALLOCATE ALL), so each read made the
                    # next transaction plan its statements anew (bench/apply_bench.py: the
                    # plan-inputs read cost 0.6 ms instead of 0.2).
                    self._tx.commit()
                else:
                    self._tx.rollback()
            # Kept only as it was handed out: no transaction (SQLAlchemy's or the driver's),
            # options unchanged (in place, e.g. yield_per), not invalidated.
            keep = (
                self._kept is not None
                and len(self._kept) < SPARE_SQLITE_CONNECTIONS
                and not conn.invalidated
                and not conn.in_transaction()
                and not driver_in_transaction(conn)
                and conn.get_execution_options() is self._options
            )
        finally:
            self._tx = None
            self._open = False
            if keep:
                assert self._kept is not None
                self._kept.append(conn)
            else:
                conn.close()
