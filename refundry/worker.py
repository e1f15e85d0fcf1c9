"""`refundry worker`: the outbox relay and the SLA timers, in one loop per process.

Several workers may run against one PostgreSQL database: the relay claims messages and the
timers claim cases with ``FOR UPDATE SKIP LOCKED``. On SQLite run one worker per database.
The adapters are chosen by flags; the sandboxes are the default (the demo and tests use them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from refundry.services.case_open import CaseDesk
from refundry.services.relay import Relay
from refundry.services.timers import TimerReport, run_timers

__all__ = ["Worker"]


@dataclass(slots=True)
class Worker:
    desk: CaseDesk
    relay: Relay
    clock: Callable[[], datetime]
    name: str = "worker"

    def run_once(self) -> tuple[int, TimerReport]:
        """One round: deliver what is due, then fire the timers that are due."""
        sent = self.relay.run_once()
        fired = run_timers(self.desk, now=self.clock(), worker=self.name)
        return sent, fired

    def run_forever(
        self, *, interval: float = 1.0, stop: Callable[[], bool] = lambda: False
    ) -> None:
        while not stop():
            sent, fired = self.run_once()
            busy = sent or fired.approved or fired.closed or fired.refunded or fired.completed
            if not busy:
                time.sleep(interval)
