"""`refundry worker`: the outbox relay, the shop's webhooks, the SLA timers and bulk refund
batches, in one loop per process.

Several workers may run against one PostgreSQL database: the relay claims messages and the
timers claim cases with ``FOR UPDATE SKIP LOCKED``. On SQLite run one worker per database.
Each round also settles one batch of a bulk refund job (services/bulk/running.py), at the job's
rate. The adapters come from the bootstrap (refundry/bootstrap.py). Each round that did something
is logged (structlog), and the worker's heartbeat is recorded every ``beat_every`` for
``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from refundry.services.bulk.running import BulkRunner
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.timers import TimerReport, run_timers
from refundry.services.operations.heartbeats import beat
from refundry.services.operations.housekeeping import sweep_api_keys, sweep_passkey_challenges
from refundry.services.outbox.relay import Relay
from refundry.services.shop_webhooks.delivery import HookSender

__all__ = ["Worker"]

log = structlog.get_logger("refundry.worker")


@dataclass(slots=True)
class Worker:
    desk: CaseDesk
    relay: Relay
    clock: Callable[[], datetime]
    name: str = "worker"
    sweep_every: timedelta = timedelta(minutes=5)  # expired API keys, old webhook events
    swept: int = 0  # keys deleted so far
    beat_every: timedelta = timedelta(seconds=10)
    tracer: Any = None  # the runtime's tracer provider when tracing is on (refundry/tracing.py)
    hooks: HookSender | None = None  # the shop's webhooks (services/shop_webhooks/delivery.py)
    bulk: BulkRunner | None = field(default_factory=BulkRunner)  # None: no bulk refund jobs
    bulk_orders: int = 0  # orders of bulk refund jobs settled in the last round
    _swept_at: datetime | None = field(default=None, init=False, repr=False)
    _beat_at: datetime | None = field(default=None, init=False, repr=False)

    def run_once(self) -> tuple[int, TimerReport]:
        """One round: deliver what is due, then fire the timers that are due (and, every
        ``sweep_every``, delete expired API idempotency keys); one trace when tracing is on."""
        if self.tracer is None:
            return self._round()
        with self.tracer.get_tracer("refundry.worker").start_as_current_span("worker.round"):
            return self._round()

    def _round(self) -> tuple[int, TimerReport]:
        sent = self.relay.run_once()
        if self.hooks is not None:
            sent += self.hooks.run_once()
        now = self.clock()
        self.bulk_orders = self.bulk.step(self.desk.engine, now=now) if self.bulk else 0
        fired = run_timers(self.desk, now=now, worker=self.name)
        swept = 0
        if self._swept_at is None or now - self._swept_at >= self.sweep_every:
            swept = sweep_api_keys(self.desk.engine, now=now)
            swept += sweep_passkey_challenges(self.desk.engine, now=now)
            if self.hooks is not None:  # webhook events past their retention
                swept += self.hooks.sweep(now=now)
            self.swept += swept
            self._swept_at = now
        if (
            sent
            or swept
            or self.bulk_orders
            or fired.approved
            or fired.closed
            or fired.refunded
            or fired.completed
        ):
            log.info(
                "worker.round",
                worker=self.name,
                messages=sent,
                timers_approved=fired.approved,
                timers_closed=fired.closed,
                timers_refunded=fired.refunded,
                timers_completed=fired.completed,
                keys_swept=swept,
                bulk_orders=self.bulk_orders,
            )
        if self._beat_at is None or now - self._beat_at >= self.beat_every:
            beat(self.desk.engine, name=self.name, at=now)
            self._beat_at = now
        return sent, fired

    def run_forever(
        self, *, interval: float = 1.0, stop: Callable[[], bool] = lambda: False
    ) -> None:
        log.info("worker.started", worker=self.name, interval=interval)
        while not stop():
            sent, fired = self.run_once()
            busy = (
                sent
                or self.bulk_orders
                or fired.approved
                or fired.closed
                or fired.refunded
                or fired.completed
            )
            if not busy:
                time.sleep(interval)


def _fired_any(fired: TimerReport) -> bool:
    return bool(fired.approved or fired.closed or fired.refunded or fired.completed)
