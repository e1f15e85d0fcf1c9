"""The store of the API's ``Idempotency-Key``: a key's first request and its stored answer.

A key is claimed by inserting its row ``in_flight`` with a random token and a lease of a few
seconds (the table's primary key makes the claim race-free across processes). The request's
writing units of work mark it ``committed`` in their own transactions (services/claims.py);
the answer is then stored (``done``), or the key dropped when the answer depended on the moment
(5xx, 409, 429) so that the same key may be retried.

A key whose request died stays ``in_flight`` or ``committed``. Once its lease has run out the
next request with it either takes the key over (``in_flight``: nothing of the first request
committed, it runs again under a new token, which fences the first out should it still be
alive) or is told the first request committed (``committed``: the API rebuilds the answer from
the committed state instead of running the request twice). A key older than its time to live
is dropped when it comes again (``refundry worker`` sweeps the others:
services/operations/housekeeping.py). The HTTP side — reading the header, replaying the bytes,
rebuilding an answer — is the API's middleware (refundry/api/idempotency.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from refundry.services.claims import Claim
from refundry.services.uow import UnitOfWork
from refundry.store.tables import api_idempotency

__all__ = ["Claim", "Earlier", "claim_key", "finish_key", "store_rebuilt", "take_over"]


@dataclass(frozen=True, slots=True)
class Earlier:
    """What an earlier request with the key says about this one."""

    # replay: the same request was answered (status, body); reused: another request used the
    # key; in_flight: the first request is still running (or claimed the key just now), within
    # its lease; committed: the first request committed, died before its answer was stored, and
    # its lease ran out (``outcome`` names what it created, ``token`` its claim).
    kind: Literal["replay", "reused", "in_flight", "committed"]
    status: int = 0
    body: bytes = b""
    outcome: str | None = None
    token: str = ""
    location: str | None = None  # the first answer's Location header (a 201's), replayed


def claim_key(
    engine: Engine,
    *,
    key: str,
    request_hash: str | tuple[str, ...],
    now: datetime,
    ttl: timedelta,
    lease: timedelta,
) -> Claim | Earlier:
    """Claim ``key`` for the request whose digest is ``request_hash`` (or any of several, the
    first being the one stored): a :class:`Claim` when this request is to run (then
    ``finish_key``), else what the earlier one says."""
    k = api_idempotency.c
    hashes = (request_hash,) if isinstance(request_hash, str) else request_hash
    with UnitOfWork(engine) as uow:
        uow.conn.execute(delete(api_idempotency).where(k.key == key, k.created_at < now - ttl))
        row = uow.conn.execute(select(api_idempotency).where(k.key == key)).first()
        if row is None:
            token = secrets.token_hex(16)
            try:
                uow.conn.execute(
                    insert(api_idempotency).values(
                        key=key,
                        request_hash=hashes[0],
                        state="in_flight",
                        created_at=now,
                        token=token,
                        lease_until=now + lease,
                    )
                )
                uow.commit()
                return Claim(key, token)
            except IntegrityError:
                return Earlier("in_flight")
        if row.request_hash not in hashes:
            return Earlier("reused")
        if row.state == "done":
            return Earlier(
                "replay", int(row.status), (row.body or "").encode(), location=row.location
            )
        if row.lease_until is not None and row.lease_until > now:
            return Earlier("in_flight")
        if row.state == "committed":
            return Earlier("committed", outcome=row.outcome, token=row.token or "")
    return take_over(engine, key=key, token=row.token, now=now, lease=lease) or Earlier("in_flight")


def take_over(
    engine: Engine, *, key: str, token: str | None, now: datetime, lease: timedelta
) -> Claim | None:
    """Give the key whose request died (its lease ran out) a new token and lease: None if
    another request took it first."""
    k = api_idempotency.c
    fresh = secrets.token_hex(16)
    same = k.token.is_(None) if token is None else k.token == token
    with UnitOfWork(engine) as uow:
        done = uow.conn.execute(
            update(api_idempotency)
            .where(
                k.key == key,
                same,
                k.state != "done",
                or_(k.lease_until.is_(None), k.lease_until <= now),
            )
            .values(state="in_flight", token=fresh, lease_until=now + lease, outcome=None)
        )
        if done.rowcount != 1:
            return None
        uow.commit()
    return Claim(key, fresh)


TRANSIENT = frozenset({409, 429})  # refusals of the moment: retrying may succeed


def finish_key(
    engine: Engine, *, claim: Claim, status: int, body: bytes, location: str | None = None
) -> None:
    """Store the answer to replay. An answer that depends on the moment is not stored — a
    server error (5xx), 429 (rate limited), 409 (the state conflicted) — the key is dropped, so
    a retry with it runs again. Nothing happens if a retry took the key over meanwhile."""
    k = api_idempotency.c
    mine = (k.key == claim.key, k.token == claim.token)
    with UnitOfWork(engine) as uow:
        if status >= 500 or status in TRANSIENT:
            uow.conn.execute(delete(api_idempotency).where(*mine, k.state == "in_flight"))
            # ... unless its use case committed: then the key stays, its lease ended, and a
            # retry rebuilds the answer rather than running the request again.
            uow.conn.execute(
                update(api_idempotency)
                .where(*mine, k.state == "committed")
                .values(lease_until=None)
            )
        else:
            uow.conn.execute(
                update(api_idempotency)
                .where(*mine)
                .values(
                    state="done",
                    status=status,
                    body=body.decode("utf-8", "replace"),
                    location=location,
                )
            )
        uow.commit()


def store_rebuilt(
    engine: Engine,
    *,
    key: str,
    token: str,
    status: int,
    body: bytes,
    location: str | None = None,
) -> None:
    """Store the answer rebuilt for a committed request whose own answer was lost."""
    k = api_idempotency.c
    with UnitOfWork(engine) as uow:
        uow.conn.execute(
            update(api_idempotency)
            .where(k.key == key, k.token == token, k.state == "committed")
            .values(
                state="done",
                status=status,
                body=body.decode("utf-8", "replace"),
                location=location,
            )
        )
        uow.commit()
