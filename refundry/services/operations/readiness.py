"""Whether this process can do its work: the database, the schema, a worker's heartbeat."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from refundry.services.operations.heartbeats import last_beats
from refundry.store.migrate import head_revision

__all__ = ["readiness"]


def readiness(engine: Engine, *, now: datetime, max_beat_age_seconds: int) -> dict[str, str]:
    """Check -> "ok" or what is wrong: ``database``, ``schema``, ``worker``."""
    checks = {"database": "ok", "schema": "ok", "worker": "ok"}
    try:
        with engine.connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        reason = str(exc.__cause__ or exc).strip().splitlines()[0][:200]
        checks["database"] = f"unreachable or not migrated: {reason}"
        checks["schema"] = checks["worker"] = "not checked"
        return checks
    if current != head_revision():
        checks["schema"] = (
            f"at {current}, not the newest {head_revision()}: run `refundry db upgrade`"
        )
    beats = last_beats(engine) if checks["schema"] == "ok" else {}
    if checks["schema"] != "ok":
        checks["worker"] = "not checked"
    elif not beats:
        checks["worker"] = "no worker has run (`refundry worker`)"
    else:
        newest = max(beats.values())
        age = now - newest
        if age > timedelta(seconds=max_beat_age_seconds):
            checks["worker"] = (
                f"the last worker round was {int(age.total_seconds())} s ago "
                f"(more than {max_beat_age_seconds} s)"
            )
    return checks
