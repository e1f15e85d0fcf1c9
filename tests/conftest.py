"""Shared fixtures: a migrated database on SQLite (a temp file) and on the real PostgreSQL.

PostgreSQL tests run against the server at REFUNDRY_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/postgres), each run in a throwaway database that is dropped
afterwards. The schema is migrated once per run on each backend (``sqlite_template``,
``pg_template``); each test gets a copy: the SQLite file copied, the PostgreSQL database made
with ``CREATE DATABASE … TEMPLATE``. Without a server they are skipped with one line saying how
to run them; under CI=true a missing server fails the run instead.
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from refundry.store.engine import make_engine
from refundry.store.migrate import upgrade

PG_ADMIN = os.environ.get("REFUNDRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0]


_PG_PROBLEM = _pg_available()


def pytest_unconfigure(config: pytest.Config) -> None:
    # A run leaves gigabytes of objects behind; the interpreter's last collection walked them
    # for two minutes after the summary (measured in CI). Frozen, they are left to the exit.
    gc.freeze()


def pytest_report_header(config: pytest.Config) -> str:
    if _PG_PROBLEM is None:
        return f"postgresql: {PG_ADMIN} (a throwaway database per run)"
    return (
        f"postgresql: NOT AVAILABLE ({_PG_PROBLEM}); PostgreSQL tests are skipped. "
        "Start a server or set REFUNDRY_TEST_PG=postgresql://user@host:port/db to run them."
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if _PG_PROBLEM is not None:
        message = (
            f"PostgreSQL unavailable at {PG_ADMIN}: {_PG_PROBLEM}. "
            "Set REFUNDRY_TEST_PG or start the server to run these tests."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: a missing server is a failure)")
        pytest.skip(message)
    import psycopg

    # This run's databases are named <prefix>_<random>; whatever a crashed test left behind
    # is dropped at the end of the run.
    prefix = f"refundry_test_{uuid.uuid4().hex[:10]}"
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{prefix}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            names = admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
            ).fetchall()
            for (name,) in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_pg(pg_url: str, *, template: str = "template0") -> str:
    """A new database (cheap on PostgreSQL: a file copy of ``template``)."""
    import psycopg

    name = f"{pg_url.rsplit('/', 1)[1]}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return f"{pg_url.rsplit('/', 1)[0]}/{name}"


def _drop_pg(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template(pg_url: str) -> str:
    """A database migrated once per run; each test's database is cloned from it
    (``CREATE DATABASE … TEMPLATE``), instead of running every migration per test."""
    import psycopg

    url = _fresh_pg(pg_url)
    upgrade(url)
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        # a template must have no other session when it is copied
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per run, checkpointed so the file alone holds the schema;
    each test's database is a copy of it."""
    path = tmp_path_factory.mktemp("template") / "refundry.sqlite"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@contextmanager
def migrated_database(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database URL on ``backend`` (sqlite | postgresql), dropped after."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("db") / "refundry.sqlite"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    pg = request.getfixturevalue("pg_url")
    url = _fresh_pg(pg, template=request.getfixturevalue("pg_template"))
    try:
        yield url
    finally:
        _drop_pg(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database URL on each backend."""
    with migrated_database(request.param, request, tmp_path_factory) as url:
        yield url


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture()
def pg_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """An engine on a migrated, empty PostgreSQL database only: for what only PostgreSQL
    shows (row locks held by one transaction while another writes, row triggers)."""
    with migrated_database("postgresql", request, tmp_path_factory) as url:
        eng = make_engine(url)
        try:
            yield eng
        finally:
            eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def twins(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Engine]]:
    """Two migrated, empty databases on one backend (the same use case done two ways)."""
    with (
        migrated_database(request.param, request, tmp_path_factory) as a,
        migrated_database(request.param, request, tmp_path_factory) as b,
    ):
        one, other = make_engine(a), make_engine(b)
        try:
            yield one, other
        finally:
            one.dispose()
            other.dispose()
