"""UnitOfWork: one transaction per use case; on SQLite its connection is kept for the next one."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from refundry.services import uow as uow_module
from refundry.services.uow import SPARE_SQLITE_CONNECTIONS, UnitOfWork
from refundry.store.engine import make_engine


@pytest.fixture()
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'uow.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    try:
        yield engine
    finally:
        engine.dispose()


def _driver(uow: UnitOfWork) -> Any:
    return uow.conn.connection.driver_connection


def _count(engine: Engine) -> int:
    with UnitOfWork(engine, readonly=True) as uow:
        return int(uow.conn.execute(text("SELECT count(*) FROM t")).scalar_one())


def test_sqlite_units_reuse_one_connection_whatever_their_kind(sqlite_engine: Engine) -> None:
    """A preview and the apply after it run on the same connection (its page cache stays
    valid); each unit still begins its own way (next test)."""
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        first = _driver(uow)
    with UnitOfWork(sqlite_engine) as uow:
        assert _driver(uow) is first
        uow.conn.execute(text("INSERT INTO t VALUES (1)"))
        uow.commit()
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        assert _driver(uow) is first
        with UnitOfWork(sqlite_engine) as inner:  # one in use: another is made, then kept
            second = _driver(inner)
            assert second is not first
            inner.commit()
    spares = sqlite_engine._refundry_spares  # type: ignore[attr-defined]
    assert [c.connection.driver_connection for c in spares.kept] == [second, first]
    assert _count(sqlite_engine) == 1


def test_kept_connections_begin_the_way_their_kind_does(sqlite_engine: Engine) -> None:
    """A kept read-only connection still begins DEFERRED: a writer is not blocked by it."""
    with UnitOfWork(sqlite_engine, readonly=True):
        pass
    with UnitOfWork(sqlite_engine, readonly=True) as reading:
        assert reading.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        with UnitOfWork(sqlite_engine) as writing:  # BEGIN IMMEDIATE: would wait on a writer
            writing.conn.execute(text("INSERT INTO t VALUES (1)"))
            writing.commit()
        assert reading.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    assert _count(sqlite_engine) == 1


def test_a_failed_unit_leaves_nothing_behind_on_its_kept_connection(
    sqlite_engine: Engine,
) -> None:
    with pytest.raises(RuntimeError), UnitOfWork(sqlite_engine) as uow:
        uow.conn.execute(text("INSERT INTO t VALUES (1)"))
        failed = _driver(uow)
        raise RuntimeError("boom")
    assert not failed.in_transaction  # rolled back, then kept
    with UnitOfWork(sqlite_engine) as uow:
        assert _driver(uow) is failed
        uow.conn.execute(text("INSERT INTO t VALUES (2)"))
        uow.commit()
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        assert [r[0] for r in uow.conn.execute(text("SELECT n FROM t"))] == [2]


def test_a_connection_whose_options_changed_is_not_kept(sqlite_engine: Engine) -> None:
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        uow.conn.execution_options(yield_per=10)  # in place, on the connection
        changed = uow.conn
    assert changed.closed  # returned to the pool, not kept
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        assert uow.conn is not changed
        assert "yield_per" not in uow.conn.get_execution_options()


def test_no_more_than_the_limit_is_kept_and_dispose_closes_them(sqlite_engine: Engine) -> None:
    # Read-only: so many writing units at once would wait for each other's lock.
    units = [UnitOfWork(sqlite_engine, readonly=True) for _ in range(SPARE_SQLITE_CONNECTIONS + 3)]
    drivers = []
    for unit in units:
        unit.__enter__()
        drivers.append(_driver(unit))
    for unit in units:
        unit.__exit__(None, None, None)
    assert len(set(map(id, drivers))) == len(units)
    spares = sqlite_engine._refundry_spares  # type: ignore[attr-defined]
    assert len(spares.kept) == SPARE_SQLITE_CONNECTIONS
    kept = [c.connection.driver_connection for c in spares.kept]
    sqlite_engine.dispose()
    assert spares.kept == []
    for driver in kept:
        with pytest.raises(Exception, match="closed"):
            driver.execute("SELECT 1")


def test_threads_never_share_a_connection(sqlite_engine: Engine) -> None:
    """Eight threads, 150 units each, released together: a driver connection is in at most
    one unit at any moment, and every write lands."""
    active: dict[int, int] = {}
    guard = threading.Lock()
    shared: list[str] = []
    barrier = threading.Barrier(8)

    def work(me: int) -> None:
        barrier.wait()
        for i in range(150):
            readonly = i % 2 == 0
            with UnitOfWork(sqlite_engine, readonly=readonly) as uow:
                key = id(_driver(uow))
                with guard:
                    if key in active:
                        shared.append(f"thread {me} got thread {active[key]}'s connection")
                    active[key] = me
                if readonly:
                    uow.conn.execute(text("SELECT count(*) FROM t")).scalar_one()
                else:
                    uow.conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": i})
                with guard:
                    del active[key]
                if not readonly:
                    uow.commit()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared == []
    assert _count(sqlite_engine) == 8 * 75


def _child_unit(engine: Engine, parents: list[int], out: Any) -> None:
    with UnitOfWork(engine) as uow:
        out.put(id(_driver(uow)) in parents)
        uow.commit()


def test_a_forked_child_does_not_use_its_parents_connections(sqlite_engine: Engine) -> None:
    with UnitOfWork(sqlite_engine) as uow:
        uow.commit()
    parents = [id(c.connection.driver_connection) for c in sqlite_engine._refundry_spares.kept]  # type: ignore[attr-defined]
    assert parents
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_unit, args=(sqlite_engine, parents, out))
    child.start()
    reused = out.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    assert reused is False


def test_postgresql_units_go_through_the_pool(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        uow.commit()
    if engine.dialect.name == "sqlite":
        assert uow_module._spares_of(engine) is not None
    else:
        assert getattr(engine, "_refundry_spares", None) is None
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_statement_logging_switched_on_later_reaches_kept_connections(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        uow.conn.execute(text("SELECT 1"))  # kept, made while statements were not logged
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        uow.conn.execute(text("SELECT count(*) FROM t"))
    assert "SELECT count(*) FROM t" in caplog.text


def test_sqlalchemy_statements_and_savepoints_inside_a_driver_begun_unit(
    sqlite_engine: Engine,
) -> None:
    """A SQLite unit begins on the driver; conn.execute() and begin_nested() make SQLAlchemy
    begin its own transaction on top, which must neither BEGIN twice nor outlive the unit."""
    with UnitOfWork(sqlite_engine) as uow:
        uow.conn.execute(text("INSERT INTO t VALUES (1)"))  # SQLAlchemy autobegins on top
        savepoint = uow.conn.begin_nested()
        uow.conn.execute(text("INSERT INTO t VALUES (2)"))
        savepoint.rollback()
        uow.commit()
    assert not _driver(uow).in_transaction
    with pytest.raises(RuntimeError), UnitOfWork(sqlite_engine) as uow:
        uow.conn.execute(text("INSERT INTO t VALUES (3)"))
        raise RuntimeError("boom")
    assert not _driver(uow).in_transaction and not uow.conn.in_transaction()
    with UnitOfWork(sqlite_engine) as uow:  # the kept connection, begun again on the driver
        assert _driver(uow).in_transaction
        assert not uow.conn.in_transaction()
        uow.conn.execute(text("INSERT INTO t VALUES (4)"))
        uow.commit()
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        assert [r[0] for r in uow.conn.execute(text("SELECT n FROM t ORDER BY n"))] == [1, 4]


def test_a_writing_unit_holds_the_write_lock_from_its_start(sqlite_engine: Engine) -> None:
    """BEGIN IMMEDIATE on the driver: a second writer waits (here: times out) even before the
    first unit has written anything."""
    with UnitOfWork(sqlite_engine) as first:
        assert _driver(first).in_transaction
        other = sqlite3.connect(sqlite_engine.url.database, timeout=0.05, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
        first.commit()


def test_a_failed_commit_is_rolled_back_and_its_connection_not_kept_open(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = uow_module.run_driver_sql

    def refuse_commit(conn: Any, sql: str) -> None:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        real(conn, sql)

    monkeypatch.setattr(uow_module, "run_driver_sql", refuse_commit)
    with pytest.raises(sqlite3.OperationalError), UnitOfWork(sqlite_engine) as uow:
        uow.conn.execute(text("SELECT 1")).all()  # a unit that also ran a SQLAlchemy statement
        failed_with_sqlalchemy = uow.conn
        uow.commit()  # SQLAlchemy's commit on top: not refused by the patch
        raise sqlite3.OperationalError("after")  # (the unit committed; see the next one)
    assert not failed_with_sqlalchemy.connection.driver_connection.in_transaction
    with (
        pytest.raises(sqlite3.OperationalError, match="disk I/O"),
        UnitOfWork(sqlite_engine) as uow,
    ):
        uow.conn.connection.driver_connection.execute("INSERT INTO t VALUES (7)")
        driver = _driver(uow)
        uow.commit()
    assert not driver.in_transaction  # rolled back by __exit__
    monkeypatch.setattr(uow_module, "run_driver_sql", real)
    with UnitOfWork(sqlite_engine) as uow:  # whatever connection it gets begins cleanly
        uow.conn.execute(text("INSERT INTO t VALUES (8)"))
        uow.commit()
    with UnitOfWork(sqlite_engine, readonly=True) as uow:
        assert [r[0] for r in uow.conn.execute(text("SELECT n FROM t"))] == [8]


def test_a_unit_that_cannot_begin_gives_its_connection_back(sqlite_engine: Engine) -> None:
    holder = sqlite3.connect(sqlite_engine.url.database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    blocked = make_engine(str(sqlite_engine.url))

    @event.listens_for(blocked, "connect")
    def _impatient(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")  # after the engine's 30 s

    try:
        with pytest.raises(OperationalError, match="locked"), UnitOfWork(blocked):
            pass
        assert blocked.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        holder.rollback()
        holder.close()
        blocked.dispose()
