"""The store of the API's ``Idempotency-Key``: a key's first request and its stored answer.

A key is claimed by inserting its row ``in_flight`` (the table's primary key makes the claim
race-free across processes), then finished with the answer to replay, or dropped when the
answer was a server error so that the same key may be retried. A key older than its time to
live is dropped when it comes again (``refundry worker`` sweeps the others:
services/operations/housekeeping.py). The HTTP side — reading the header, replaying the
bytes — is the API's middleware (refundry/api/idempotency.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from refundry.services.uow import UnitOfWork
from refundry.store.tables import api_idempotency

__all__ = ["Earlier", "claim_key", "finish_key"]


@dataclass(frozen=True, slots=True)
class Earlier:
    """What an earlier request with the key says about this one."""

    # replay: the same request was answered (status, body); reused: another request used the
    # key; in_flight: the first request is still running (or claimed the key just now).
    kind: Literal["replay", "reused", "in_flight"]
    status: int = 0
    body: bytes = b""


def claim_key(
    engine: Engine, *, key: str, request_hash: str, now: datetime, ttl: timedelta
) -> Earlier | None:
    """Claim ``key`` for the request whose digest is ``request_hash``: None when this request
    is the first (run it, then ``finish_key``), else what the earlier one says."""
    k = api_idempotency.c
    with UnitOfWork(engine) as uow:
        uow.conn.execute(delete(api_idempotency).where(k.key == key, k.created_at < now - ttl))
        row = uow.conn.execute(select(api_idempotency).where(k.key == key)).first()
        if row is None:
            try:
                uow.conn.execute(
                    insert(api_idempotency).values(
                        key=key, request_hash=request_hash, state="in_flight", created_at=now
                    )
                )
                uow.commit()
                return None
            except IntegrityError:
                return Earlier("in_flight")
        if row.request_hash != request_hash:
            return Earlier("reused")
        if row.state != "done":
            return Earlier("in_flight")
        return Earlier("replay", int(row.status), (row.body or "").encode())


TRANSIENT = frozenset({409, 429})  # refusals of the moment: retrying may succeed


def finish_key(engine: Engine, *, key: str, status: int, body: bytes) -> None:
    """Store the answer to replay. An answer that depends on the moment is not stored — a
    server error (5xx), 429 (rate limited), 409 (the state conflicted) — the key is dropped, so
    a retry with it runs again."""
    k = api_idempotency.c
    with UnitOfWork(engine) as uow:
        if status >= 500 or status in TRANSIENT:
            uow.conn.execute(delete(api_idempotency).where(k.key == key))
        else:
            uow.conn.execute(
                update(api_idempotency)
                .where(k.key == key)
                .values(state="done", status=status, body=body.decode("utf-8", "replace"))
            )
        uow.commit()
