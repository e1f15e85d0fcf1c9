"""Shared fixtures: a migrated database on SQLite (a temp file) and on the real PostgreSQL.

PostgreSQL tests run against the server at REFUNDRY_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/postgres), each run in a throwaway database that is dropped
afterwards. Without a server they are skipped with one line saying how to run them; under
CI=true a missing server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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


def _fresh_pg(pg_url: str) -> str:
    """A new database per test (cheap on PostgreSQL: CREATE DATABASE from template0)."""
    import psycopg

    name = f"{pg_url.rsplit('/', 1)[1]}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{pg_url.rsplit('/', 1)[0]}/{name}"


def _drop_pg(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'refundry.sqlite'}"
        upgrade(url)
        yield url
        return
    pg = request.getfixturevalue("pg_url")
    url = _fresh_pg(pg)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_pg(url)


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()
