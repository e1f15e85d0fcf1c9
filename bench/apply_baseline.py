"""The bare-driver side of bench/apply_bench.py, and the database plumbing both sides share.

The baseline performs, for each refund, exactly the INSERT/UPDATE statements refundry's apply
transaction executed (captured at the DB-API cursor, with their parameters and row counts), on a
clone of the database refundry started from, through sqlite3 or psycopg and nothing else: one
transaction per refund, no reads, no plan. Every statement must touch the same number of rows as
it did for refundry (asserted), so the clone's state follows the same path.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine, event, select

from refundry.store.tables import metadata

# The server the tests use too (tests/conftest.py).
PG_ADMIN = os.environ.get("REFUNDRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = [t.name for t in metadata.sorted_tables]
_TARGET = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Write:
    statement: str
    parameters: Any
    many: bool
    rowcount: int

    @property
    def table(self) -> str:
        m = _TARGET.match(self.statement)
        assert m, self.statement
        return m.group(1)

    @property
    def returning(self) -> bool:
        return " RETURNING " in self.statement

    @property
    def verb(self) -> str:
        return self.statement.lstrip()[:6].upper()


@dataclass(slots=True)
class WriteCapture:
    """Records the writes an engine's connections execute while ``current`` is a list; counts
    every statement (by verb) and the time spent inside the DB-API calls meanwhile."""

    current: list[Write] | None = None
    refunds: list[list[Write]] = field(default_factory=list)
    verbs: Counter[str] = field(default_factory=Counter)
    in_driver: float = 0.0
    _started: float = 0.0
    _cursors: list[Any] = field(default_factory=list)

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._starts)
        event.listen(engine, "after_cursor_execute", self._seen)

    def detach(self, engine: Engine) -> None:
        event.remove(engine, "before_cursor_execute", self._starts)
        event.remove(engine, "after_cursor_execute", self._seen)

    def _starts(self, *_args: Any) -> None:
        self._started = time.perf_counter()

    def _seen(
        self,
        _conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        if self.current is None:
            return
        self.in_driver += time.perf_counter() - self._started
        verb = statement.lstrip()[:6].upper()
        self.verbs[verb] += 1
        if verb in ("INSERT", "UPDATE", "DELETE"):
            # Inside refundry's PostgreSQL pipeline the count is known only once the answers
            # are in: read at the end of the refund (the cursor stays readable).
            self.current.append(Write(statement, parameters, executemany, -1))
            self._cursors.append(cursor)

    def begin(self) -> None:
        self.current = []
        self._cursors = []

    def end(self, keep: bool = True) -> None:
        if keep and self.current is not None:
            self.refunds.append(
                [
                    Write(w.statement, w.parameters, w.many, int(c.rowcount))
                    for w, c in zip(self.current, self._cursors, strict=True)
                ]
            )
        self.current = None
        self._cursors = []

    def updated_rows(self) -> Counter[str]:
        return updated_rows(self.refunds)


def updated_rows(refunds: Iterable[Sequence[Write]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for writes in refunds:
        for w in writes:
            if w.verb == "UPDATE":
                out[w.table] += w.rowcount
    return out


# --- replay through the bare drivers ------------------------------------------------------------


def sqlite_connect(path: str) -> sqlite3.Connection:
    """A sqlite3 connection with refundry's pragmas; we issue BEGIN ourselves."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def replay_sqlite(
    conn: sqlite3.Connection, refunds: Sequence[Sequence[Write]], warmup: int
) -> tuple[float, Counter[str]]:
    """(seconds spent on refunds[warmup:], rows updated per table) on ``conn``
    (``sqlite_connect``); the first ``warmup`` refunds are replayed untimed."""
    cur = conn.cursor()
    return _replay(
        cur,
        refunds,
        warmup,
        begin=lambda: cur.execute("BEGIN IMMEDIATE"),
        commit=lambda: cur.execute("COMMIT"),
    )


def replay_pg(
    conn: psycopg.Connection[Any], refunds: Sequence[Sequence[Write]], warmup: int
) -> tuple[float, Counter[str]]:
    """The same on PostgreSQL (``psycopg.connect(plain_pg(url))``): one transaction (its
    implicit BEGIN) per refund."""
    return _replay(conn.cursor(), refunds, warmup, begin=lambda: None, commit=conn.commit)


def _replay(
    cur: Any,
    refunds: Sequence[Sequence[Write]],
    warmup: int,
    *,
    begin: Callable[[], object],
    commit: Callable[[], object],
) -> tuple[float, Counter[str]]:
    elapsed = 0.0
    updated: Counter[str] = Counter()
    for i, writes in enumerate(refunds):
        start = time.perf_counter()
        begin()
        for w in writes:
            if w.many:
                cur.executemany(w.statement, w.parameters)
            else:
                cur.execute(w.statement, w.parameters)
            if w.returning and not w.many:
                cur.fetchall()  # as refundry does; SQLite counts the rows as they are read
            if cur.rowcount != w.rowcount:
                raise AssertionError(f"baseline touched {cur.rowcount} rows: {w}")
            if w.verb == "UPDATE":
                updated[w.table] += cur.rowcount
        commit()
        if i >= warmup:
            elapsed += time.perf_counter() - start
    return elapsed, updated


# --- counting and comparing ---------------------------------------------------------------------


def pg_connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(plain_pg(url))


def plain_pg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def row_counts(url: str) -> dict[str, int]:
    """SELECT count(*) of every table, through the bare driver."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            conn.close()
    with psycopg.connect(plain_pg(url)) as pg:
        return {t: pg.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def content_digest(url: str) -> str:
    """A hash of every row of every table (rows sorted), to prove both sides end equal."""
    h = hashlib.sha256()

    def feed(rows: Iterable[Sequence[Any]]) -> None:
        for text in sorted(repr(tuple(r)) for r in rows):
            h.update(text.encode())

    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for t in TABLES:
                feed(conn.execute(f"SELECT * FROM {t}"))
        finally:
            conn.close()
    else:
        with psycopg.connect(plain_pg(url)) as pg:
            for t in TABLES:
                feed(pg.execute(f"SELECT * FROM {t}").fetchall())
    return h.hexdigest()


# --- databases ----------------------------------------------------------------------------------


def clone_sqlite(src_path: str, dst_path: str) -> None:
    """A consistent copy (the online backup API: the WAL's content included)."""
    src = sqlite3.connect(src_path)
    dst = sqlite3.connect(dst_path)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    dst = sqlite_connect(dst_path)
    dst.close()


def pg_create(name: str, template: str | None = None) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        extra = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{extra}')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def pg_drop(names: Iterable[str]) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_settings() -> str:
    with psycopg.connect(PG_ADMIN) as pg:
        values = [
            f"{k}={pg.execute(f'SHOW {k}').fetchone()[0]}"  # type: ignore[index]
            for k in ("fsync", "synchronous_commit", "wal_sync_method")
        ]
    return " ".join(values)


def copy_sqlite_to_pg(src: Engine, pg_url: str) -> int:
    """Every row of a migrated SQLite database into a migrated PostgreSQL one (COPY), replacing
    what the migration put there; serial sequences follow. Returns the rows copied."""
    total = 0
    with psycopg.connect(plain_pg(pg_url)) as pg, src.connect() as lite:
        names = ", ".join(TABLES)
        pg.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        for table in metadata.sorted_tables:
            cols = [c.name for c in table.columns]
            with pg.cursor().copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in lite.execute(select(table)):
                    copy.write_row(tuple(row))
                    total += 1
            pk = list(table.primary_key.columns)
            if len(pk) == 1:
                seq = pg.execute(
                    "SELECT pg_get_serial_sequence(%s, %s)", (table.name, pk[0].name)
                ).fetchone()
                if seq and seq[0]:
                    pg.execute(
                        f"SELECT setval('{seq[0]}', "
                        f"(SELECT coalesce(max({pk[0].name}), 0) + 1 FROM {table.name}), false)"
                    )
        pg.commit()
        pg.autocommit = True
        pg.execute("ANALYZE")
    return total


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")
