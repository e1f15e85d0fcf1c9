"""Schema migrations (Alembic), run from code: `refundry db upgrade` and the tests use this."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from refundry.store.engine import database_url

__all__ = ["alembic_config", "head_revision", "schema_revisions", "upgrade"]

HERE = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (creating the SQLite file if needed)."""
    command.upgrade(alembic_config(url), revision)


@cache
def head_revision() -> str:
    """The newest migration (read once: the scripts do not change while the process runs)."""
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the revision the database is at, or None when never migrated; the newest revision)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head_revision()
