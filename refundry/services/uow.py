"""One use case, one transaction: commit explicitly, roll back otherwise."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine, RootTransaction

__all__ = ["UnitOfWork"]


class UnitOfWork:
    """``with UnitOfWork(engine) as uow: ...; uow.commit()``.

    On SQLite a writing unit starts with BEGIN IMMEDIATE (the write lock is taken before the
    first read); ``readonly=True`` starts a deferred transaction that never blocks writers.
    A read-only unit ends with COMMIT (see ``__exit__``), any other unit left without
    ``commit()`` rolls back.
    """

    def __init__(self, engine: Engine, *, readonly: bool = False) -> None:
        self._engine = engine
        self._readonly = readonly
        self._tx: RootTransaction | None = None
        self.conn: Connection

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def __enter__(self) -> UnitOfWork:
        conn = self._engine.connect()
        if self._readonly:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
        self.conn = conn
        self._tx = conn.begin()
        return self

    def commit(self) -> None:
        assert self._tx is not None
        self._tx.commit()
        self._tx = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None:
                if self._readonly and exc_type is None:
                    # A read ends with COMMIT, not ROLLBACK: the same for a transaction that
                    # wrote nothing, but psycopg drops every prepared statement of the
                    # connection on ROLLBACK (and sends DEALLOCATE ALL), so each read made the
                    # next transaction plan its statements anew (bench/apply_bench.py: the
                    # plan-inputs read cost 0.6 ms instead of 0.2).
                    self._tx.commit()
                else:
                    self._tx.rollback()
        finally:
            self.conn.close()
