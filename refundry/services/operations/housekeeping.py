"""Housekeeping the worker does beside the relay and the timers: expired API idempotency keys.

The API's Idempotency-Key middleware keeps each key's first answer for 48 hours (docs/api.md)
and drops an expired key when the same key comes again; keys never sent again would stay
forever. The worker deletes them in batches (one short transaction each, by the index on
``created_at``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, delete, select

from refundry.services.uow import UnitOfWork
from refundry.store.tables import api_idempotency

__all__ = ["API_KEY_TTL", "sweep_api_keys"]

API_KEY_TTL = timedelta(hours=48)  # also the API middleware's (api/settings.py)

_k = api_idempotency.c
_EXPIRED = delete(api_idempotency).where(
    _k.key.in_(
        select(_k.key)
        .where(_k.created_at < bindparam("before", type_=_k.created_at.type))
        .order_by(_k.created_at)
        .limit(bindparam("batch"))
        .scalar_subquery()
    )
)


def sweep_api_keys(
    engine: Engine, *, now: datetime, ttl: timedelta = API_KEY_TTL, batch: int = 1000
) -> int:
    """Delete the API idempotency keys created more than ``ttl`` before ``now``, ``batch`` a
    transaction; returns how many went."""
    total = 0
    while True:
        with UnitOfWork(engine) as uow:
            gone = uow.conn.execute(_EXPIRED, {"before": now - ttl, "batch": batch}).rowcount
            uow.commit()
        total += gone
        if gone < batch:
            return total
