"""Opening the database: one URL chooses SQLite (embedded default) or PostgreSQL.

SQLite runs in WAL mode with synchronous=FULL (a committed refund survives power loss),
foreign keys on, and every write transaction starts with
``BEGIN IMMEDIATE`` so two writers never both read and then both write (the second waits for
the first, up to ``busy_timeout``). A connection is used by one thread at a time (the pool
hands it out and takes it back); each process opens its own engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

__all__ = ["DEFAULT_URL", "database_url", "make_engine"]

DEFAULT_URL = "sqlite:///refundry.sqlite"
ENV = "REFUNDRY_DATABASE_URL"


def database_url(explicit: str | None = None) -> str:
    """The URL to use: explicit, else ``REFUNDRY_DATABASE_URL``, else ./refundry.sqlite."""
    url = explicit or os.environ.get(ENV) or DEFAULT_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = database_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


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
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine
