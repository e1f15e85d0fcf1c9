"""Opening the database: one URL chooses SQLite (embedded default) or PostgreSQL.

SQLite runs in WAL mode with synchronous=FULL (a committed refund survives power loss),
foreign keys on, and every write transaction starts with
``BEGIN IMMEDIATE`` so two writers never both read and then both write (the second waits for
the first, up to ``busy_timeout``). A connection is used by one thread at a time (the pool
hands it out and takes it back); each process opens its own engine.

PostgreSQL connections are checked before use only when they sat in the pool for
``ping_after_idle`` seconds (default ``PING_AFTER_IDLE``) — the connections a server restart, a
failover or an idle timeout may have cut — instead of on every checkout (``pool_pre_ping``: one
round trip per transaction, two per refund). A dead connection found by the check is replaced
before use, as with ``pool_pre_ping``. Trade-off: a server that goes away while connections are
in busy use (returned less than ``ping_after_idle`` ago) fails the next transaction on one of
them with a disconnect error instead of having it retried; SQLAlchemy then invalidates the whole
pool, so the transactions after it get new connections. ``pool_recycle`` (default 30 minutes)
bounds a connection's age. ``ping_after_idle=0`` pings on every checkout; passing
``pool_pre_ping`` explicitly keeps SQLAlchemy's own check and no idle check.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from refundry.store.prepared import driver_in_transaction, run_driver_sql

__all__ = ["DEFAULT_URL", "PING_AFTER_IDLE", "SQLITE_BEGIN", "database_url", "make_engine"]

# Seconds a pooled PostgreSQL connection may sit unused before it is checked at its next checkout.
PING_AFTER_IDLE = 1.0

DEFAULT_URL = "sqlite:///refundry.sqlite"
ENV = "REFUNDRY_DATABASE_URL"
# SQLite's BEGIN statements by mode (also run by services.uow on the driver itself).
SQLITE_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}


def database_url(explicit: str | None = None) -> str:
    """The URL to use: explicit, else ``REFUNDRY_DATABASE_URL``, else ./refundry.sqlite."""
    url = explicit or os.environ.get(ENV) or DEFAULT_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """``ping_after_idle`` (PostgreSQL, seconds): see the module's docstring."""
    url = database_url(url)
    ping_after_idle = kwargs.pop("ping_after_idle", None)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    if "pool_pre_ping" in kwargs:
        return create_engine(url, **kwargs)
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)
    _ping_idle_connections(engine, ping_after_idle)
    return engine


def _ping_idle_connections(engine: Engine, after: float | None) -> None:
    """Check a pooled connection at checkout if it was idle ``after`` seconds (None: the
    module's ``PING_AFTER_IDLE`` at that time); a failed check makes the pool replace it."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["refundry_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("refundry_idle_since")
        limit = PING_AFTER_IDLE if after is None else after
        if since is None or time.monotonic() - since < limit:
            return  # a new connection, or one returned moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("connection failed its idle check") from exc


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # A pool of connections: a checkout belongs to one thread until it is returned, so no
    # connection is ever used by two threads at once (opening one per transaction cost
    # ~3.5 ms: connect, pragmas, schema read, WAL checkpoint on close — bench/apply_bench.py).
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 32)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if driver_in_transaction(conn):
            return  # begun on the driver already (services.uow): SQLAlchemy's is on top of it
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        # On the driver itself: through exec_driver_sql it cost ~0.05 ms a transaction.
        run_driver_sql(conn, SQLITE_BEGIN[mode])

    return engine
