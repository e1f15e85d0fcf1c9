"""A job run to its end: batch after batch, the refunds fed toward the gateway at a capped rate.

The gateway calls of the refunds leave through the outbox relay (services/outbox/relay.py); the
job's ``rate`` caps how fast its refunds enter the outbox (refunds per second, 0: unlimited), so
a recall of 100,000 orders does not queue them faster than the gateway is meant to take them.
A batch is never larger than one second's worth of the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from refundry.services.bulk.jobs import Job, read_job, run_batch, unfinished_jobs

__all__ = ["DEFAULT_BATCH", "BulkRunner", "Pacer", "run_job"]

log = structlog.get_logger("refundry.bulk")

DEFAULT_BATCH = 200


@dataclass(slots=True)
class Pacer:
    """How long to wait before the next batch so that ``rate`` refunds per second are not
    exceeded, measured from the first batch (``monotonic`` and ``sleep`` passed in)."""

    rate: int
    monotonic: Callable[[], float] = time.monotonic
    started: float | None = field(default=None)
    sent: int = 0

    def batch_size(self, size: int) -> int:
        return min(size, self.rate) if self.rate else size

    def wait(self) -> float:
        """Seconds until the next batch may start (0: now)."""
        now = self.monotonic()
        if self.started is None:
            self.started = now
        if not self.rate:
            return 0.0
        return max(0.0, self.started + self.sent / self.rate - now)

    def count(self, refunds: int) -> None:
        self.sent += refunds


def run_job(
    engine: Engine,
    job_id: str,
    *,
    clock: Callable[[], datetime],
    batch: int = DEFAULT_BATCH,
    rate: int | None = None,
    on_batch: Callable[[Job], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Job:
    """Run the job's pending orders to the end; ``rate`` overrides the job's own."""
    job = read_job(engine, job_id)
    pacer = Pacer(rate=job.rate if rate is None else rate)
    while job.state != "finished":
        pause = pacer.wait()
        if pause:
            sleep(pause)
        result = run_batch(engine, job, size=pacer.batch_size(batch), now=clock())
        pacer.count(result.refunds)
        job = read_job(engine, job_id)
        if on_batch is not None:
            on_batch(job)
        if result.processed == 0 and not result.finished:
            break  # pragma: no cover - every pending order gets an outcome
    return job


@dataclass(slots=True)
class BulkRunner:
    """The worker's share of bulk refunds: each round, one batch of the oldest unfinished job
    whose rate allows it now (jobs the API started run here; a job a killed CLI left is taken
    up too). Never sleeps: a job that must wait leaves the round to the next job."""

    batch: int = DEFAULT_BATCH
    monotonic: Callable[[], float] = time.monotonic
    _pacers: dict[str, Pacer] = field(default_factory=dict)

    def step(self, engine: Engine, *, now: datetime) -> int:
        """Orders given an outcome this round."""
        for job_id in unfinished_jobs(engine):
            job = read_job(engine, job_id)
            pacer = self._pacers.get(job_id)
            if pacer is None:
                pacer = self._pacers[job_id] = Pacer(rate=job.rate, monotonic=self.monotonic)
            if pacer.wait() > 0:
                continue
            try:
                result = run_batch(engine, job, size=pacer.batch_size(self.batch), now=now)
            except DBAPIError as exc:  # e.g. a deadlock with another job's runner: next round
                log.warning("bulk.batch_failed", job_id=job_id, error=str(exc.orig))
                return 0
            pacer.count(result.refunds)
            if result.finished:
                self._pacers.pop(job_id, None)
            return result.processed
        return 0
