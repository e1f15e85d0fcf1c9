"""Worker heartbeats: each ``refundry worker`` records when it last finished a round, so
``/readyz`` and ``/metrics`` can tell a running relay from a stopped one (a stopped relay means
refunds that never reach the gateway)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from refundry.services.uow import UnitOfWork
from refundry.store.tables import worker_heartbeats

__all__ = ["beat", "last_beats"]


def beat(engine: Engine, *, name: str, at: datetime) -> None:
    """Record that worker ``name`` finished a round at ``at`` (one upsert, its own transaction)."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(worker_heartbeats).values(name=name, beat_at=at, rounds=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"beat_at": at, "rounds": worker_heartbeats.c.rounds + 1},
    )
    with UnitOfWork(engine) as uow:
        uow.conn.execute(stmt)
        uow.commit()


def last_beats(engine: Engine) -> dict[str, datetime]:
    """Worker name -> when it last finished a round."""
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(select(worker_heartbeats.c.name, worker_heartbeats.c.beat_at))
        return {name: at for name, at in rows}
