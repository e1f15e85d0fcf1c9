"""One use case, one transaction: commit explicitly, roll back otherwise."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine, RootTransaction

__all__ = ["UnitOfWork"]


class UnitOfWork:
    """``with UnitOfWork(engine) as uow: ...; uow.commit()``.

    On SQLite a writing unit starts with BEGIN IMMEDIATE (the write lock is taken before the
    first read); ``readonly=True`` starts a deferred transaction that never blocks writers.
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
                self._tx.rollback()
        finally:
            self.conn.close()
