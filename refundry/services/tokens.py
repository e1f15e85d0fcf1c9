"""Revoking bearer tokens before they expire (an admin's decision, audited).

Tokens are stateless (refundry/api/auth.py): checking a database row on every request would
cost a query per call. Instead each process keeps the set of revoked, unexpired token ids and
reads it again at most every ``refresh`` (5 s): a revocation takes effect everywhere within
that time, and a request costs one set lookup.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select

from refundry.services.audit.chain import AuditTrail
from refundry.services.uow import UnitOfWork
from refundry.store.tables import revoked_tokens

__all__ = ["RevocationList", "revoke_token"]


def revoke_token(
    engine: Engine,
    *,
    jti: str,
    subject: str,
    expires_at: datetime,
    actor: str,
    reason: str,
    now: datetime,
) -> bool:
    """Revoke the token ``jti``; False when it was revoked already (nothing written)."""
    with UnitOfWork(engine) as uow:
        seen = uow.conn.execute(
            select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == jti)
        ).first()
        if seen is not None:
            return False
        uow.conn.execute(
            insert(revoked_tokens).values(
                jti=jti,
                subject=subject,
                expires_at=expires_at,
                revoked_at=now,
                revoked_by=actor,
                reason=reason,
            )
        )
        trail = AuditTrail(actor=actor, at=now, customer_id=None)
        trail.record("token.revoked", jti=jti, subject=subject, reason=reason)
        trail.flush(uow.conn)
        uow.commit()
    return True


class RevocationList:
    """The revoked token ids still unexpired, re-read at most every ``refresh``."""

    def __init__(self, engine: Engine, *, refresh: timedelta = timedelta(seconds=5)) -> None:
        self._engine = engine
        self._refresh = refresh
        self._lock = threading.Lock()
        self._ids: frozenset[str] = frozenset()
        self._read_at: datetime | None = None

    def is_revoked(self, jti: str | None, *, now: datetime) -> bool:
        if jti is None:
            return False
        with self._lock:
            if self._read_at is None or now - self._read_at >= self._refresh or now < self._read_at:
                with UnitOfWork(self._engine, readonly=True) as uow:
                    rows = uow.conn.execute(
                        select(revoked_tokens.c.jti).where(revoked_tokens.c.expires_at > now)
                    )
                    self._ids = frozenset(r for (r,) in rows)
                self._read_at = now
            return jti in self._ids

    def forget(self) -> None:
        """Read again at the next check (after this process revoked a token itself)."""
        with self._lock:
            self._read_at = None
