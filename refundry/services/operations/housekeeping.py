"""Housekeeping the worker does beside the relay and the timers: expired API idempotency keys
and passkey challenges.

The API's Idempotency-Key middleware keeps each key's first answer for 48 hours (docs/api.md)
and drops an expired key when the same key comes again; keys never sent again would stay
forever. The worker deletes them in batches (one short transaction each, by the index on
``created_at``). A passkey challenge (services/passkeys.py) is useless once it has expired;
``sweep_passkey_challenges`` deletes those a day past their end the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, delete, select

from refundry.services.uow import UnitOfWork
from refundry.store.tables import api_idempotency, passkey_challenges

__all__ = ["API_KEY_TTL", "sweep_api_keys", "sweep_passkey_challenges"]

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
    return _sweep(engine, _EXPIRED, before=now - ttl, batch=batch)


def _sweep(engine: Engine, statement: Any, *, before: datetime, batch: int) -> int:
    """Run a batched delete until a batch comes back short; how many rows went."""
    total = 0
    while True:
        with UnitOfWork(engine) as uow:
            gone = uow.conn.execute(statement, {"before": before, "batch": batch}).rowcount
            uow.commit()
        total += gone
        if gone < batch:
            return total


_c = passkey_challenges.c
_ENDED = delete(passkey_challenges).where(
    _c.challenge.in_(
        select(_c.challenge)
        .where(_c.expires_at < bindparam("before", type_=_c.expires_at.type))
        .order_by(_c.expires_at)
        .limit(bindparam("batch"))
        .scalar_subquery()
    )
)


def sweep_passkey_challenges(engine: Engine, *, now: datetime, batch: int = 1000) -> int:
    """Delete the passkey challenges that ended more than a day before ``now`` (kept that
    long for an inquiry into a refused answer), ``batch`` a transaction; returns how many."""
    return _sweep(engine, _ENDED, before=now - timedelta(days=1), batch=batch)
