"""Sending the queued deliveries: signed by the ``standardwebhooks`` library, retried with
exponential backoff and jitter, every attempt in the delivery log.

The worker claims due deliveries of enabled endpoints with a lease (PostgreSQL ``FOR UPDATE
SKIP LOCKED``, so several workers share them), posts each outside any transaction, then
records the attempt. A worker that dies after posting leaves the lease to run out and the
delivery is sent again with the same ``webhook-id``: the shop deduplicates on it (at least
once, as the specification says).

Headers per Standard Webhooks: ``webhook-id`` (the event's ``msg_…`` id, the same on every
attempt), ``webhook-timestamp`` (the attempt's time in Unix seconds, read from ``wall``: the
real clock, since receivers check it against theirs) and ``webhook-signature`` (``v1,<base64>``,
two of them while a rotated secret still overlaps).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, insert, select, update
from standardwebhooks.webhooks import Webhook

from refundry.adapters.clock import utc_now
from refundry.adapters.shop_webhooks import HookAnswer, HookPoster
from refundry.services.audit.chain import AuditTrail
from refundry.services.shop_webhooks.log import sweep_webhooks
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)

__all__ = ["HookSender", "RetrySchedule", "signature"]

log = structlog.get_logger("refundry.webhooks")

_d, _p = webhook_deliveries.c, webhook_endpoints.c


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """After the n-th failed attempt of a round the next waits ``min(cap, base · 2^(n-1))``,
    half of it fixed and half random ("equal jitter": retries of many deliveries spread out,
    yet never come sooner than half the step). After ``max_attempts`` the delivery fails."""

    base: timedelta = timedelta(minutes=1)
    cap: timedelta = timedelta(hours=12)
    max_attempts: int = 12

    def delay(self, failed: int, rng: random.Random) -> timedelta:
        step = min(self.cap.total_seconds(), self.base.total_seconds() * 2 ** (failed - 1))
        return timedelta(seconds=step / 2 + rng.uniform(0, step / 2))


def signature(secrets: list[str], *, msg_id: str, at: datetime, body: bytes) -> str:
    """``webhook-signature``: one ``v1,…`` per secret, space-separated."""
    return " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets)


@dataclass(slots=True)
class HookSender:
    engine: Engine
    poster: HookPoster
    clock: Callable[[], datetime]
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    disable_after: int = 20  # consecutive failed attempts of one endpoint (setting)
    lease: timedelta = timedelta(seconds=60)
    wall: Callable[[], datetime] = utc_now  # the webhook-timestamp's clock
    rng: random.Random = field(default_factory=random.Random)
    worker: str = "webhooks"
    retention: timedelta = timedelta(days=30)  # events kept for the log and replays (setting)

    def run_once(self, *, batch: int = 20) -> int:
        """Claim and send the deliveries due now; returns how many were attempted."""
        claimed = self._claim(batch)
        for row in claimed:
            self._attempt(row)
        return len(claimed)

    def sweep(self, *, now: datetime) -> int:
        """Forget events older than ``retention`` that wait for nothing (the worker's
        housekeeping; services/shop_webhooks/log.py)."""
        return sweep_webhooks(self.engine, now=now, keep=self.retention)

    def _claim(self, batch: int) -> list[Any]:
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            query = (
                select(
                    _d.id,
                    _d.event_id,
                    _d.endpoint_id,
                    _d.attempts,
                    _d.total_attempts,
                    _p.url,
                    _p.secret,
                    _p.previous_secret,
                    _p.previous_secret_until,
                    webhook_events.c.body,
                )
                .join(webhook_endpoints, _p.id == _d.endpoint_id)
                .join(webhook_events, webhook_events.c.id == _d.event_id)
                .where(_d.status == "pending", _d.next_attempt_at <= now, _p.status == "enabled")
                .order_by(_d.next_attempt_at, _d.id)
                .limit(batch)
            )
            if uow.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True, of=webhook_deliveries)
            rows = uow.conn.execute(query).all()
            if rows:
                uow.conn.execute(
                    update(webhook_deliveries)
                    .where(_d.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=now + self.lease)
                )
            uow.commit()
        return list(rows)

    def _attempt(self, row: Any) -> None:
        now = self.clock()
        secrets = [row.secret]
        if row.previous_secret and row.previous_secret_until and row.previous_secret_until > now:
            secrets.append(row.previous_secret)
        body = row.body.encode()
        stamp = self.wall()
        headers = {
            "webhook-id": row.event_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signature(secrets, msg_id=row.event_id, at=stamp, body=body),
        }
        answer = self.poster.post(row.url, body=body, headers=headers)
        with UnitOfWork(self.engine) as uow:
            self._record(uow.conn, row, answer, now)
            uow.commit()

    def _record(self, conn: Connection, row: Any, answer: HookAnswer, now: datetime) -> None:
        tried = int(row.attempts) + 1
        status, next_at = "succeeded", None
        if not answer.ok:
            status = "failed" if tried >= self.schedule.max_attempts else "pending"
            if status == "pending":
                next_at = now + self.schedule.delay(tried, self.rng)
        (log.info if answer.ok else log.warning)(
            "webhook.attempt",
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            status_code=answer.status_code,
            latency_ms=answer.latency_ms,
            outcome=status,
        )
        conn.execute(
            update(webhook_deliveries)
            .where(_d.id == row.id)
            .values(
                status=status,
                attempts=tried,
                total_attempts=_d.total_attempts + 1,
                next_attempt_at=next_at,
                last_status_code=answer.status_code,
                updated_at=now,
            )
        )
        conn.execute(
            insert(webhook_attempts).values(
                delivery_id=row.id,
                attempt=int(row.total_attempts) + 1,
                at=now,
                status_code=answer.status_code,
                latency_ms=answer.latency_ms,
                error=answer.error,
                next_attempt_at=next_at,
            )
        )
        self._count(conn, row.endpoint_id, ok=answer.ok, now=now)

    def _count(self, conn: Connection, endpoint_id: str, *, ok: bool, now: datetime) -> None:
        """Consecutive failures per endpoint; past ``disable_after`` the endpoint is disabled
        (audited), its deliveries wait until an admin enables it."""
        mine = update(webhook_endpoints).where(_p.id == endpoint_id)
        if ok:
            conn.execute(mine.where(_p.consecutive_failures != 0).values(consecutive_failures=0))
            return
        conn.execute(mine.values(consecutive_failures=_p.consecutive_failures + 1))
        reason = f"{self.disable_after} consecutive failed attempts"
        disabled = conn.execute(
            mine.where(
                _p.status == "enabled", _p.consecutive_failures >= self.disable_after
            ).values(status="disabled", disabled_reason=reason, updated_at=now)
        ).rowcount
        if disabled:
            log.error("webhook.endpoint_disabled", endpoint_id=endpoint_id, reason=reason)
            trail = AuditTrail(actor=f"system:{self.worker}", at=now, customer_id=None)
            trail.record("webhook.endpoint_disabled", endpoint_id=endpoint_id, why=reason)
            trail.flush(conn)
