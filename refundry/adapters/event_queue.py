"""The webhook queue the sandboxes share (payment gateway, logistics): events due for delivery,
in delivery order, handed to a sink outside the sandbox's lock, re-queued if the sink fails."""

from __future__ import annotations

import bisect
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["Delivery", "WebhookQueue"]

Event = TypeVar("Event")


@dataclass(order=True, slots=True)
class Delivery(Generic[Event]):
    rank: int  # 0 in order; random when reordering
    seq: int
    event: Event = field(compare=False)


class WebhookQueue(ABC, Generic[Event]):
    """Mixin: the owning sandbox keeps ``_deliveries`` sorted under ``_lock`` and moves events
    into it in ``_settle(now)`` as their time comes, by its ``_clock``."""

    _lock: threading.Lock
    _deliveries: list[Delivery[Event]]
    _clock: Callable[[], datetime]

    def now(self) -> datetime:
        """The sandbox's clock (timezone-aware)."""
        when = self._clock()
        if when.tzinfo is None:
            raise ValueError("the sandbox clock must be timezone-aware")
        return when

    @abstractmethod
    def _settle(self, now: datetime) -> None:
        """Move the events whose time has come into ``_deliveries``."""

    def _due(self) -> tuple[Event, ...]:
        with self._lock:
            self._settle(self.now())
            return tuple(d.event for d in self._deliveries)

    def deliver(self, sink: Callable[[Event], None], *, limit: int | None = 1) -> int:
        """Hand up to ``limit`` due deliveries to ``sink`` (all of them for None); return how
        many went. If ``sink`` raises, that delivery stays queued (the sender will retry it)
        and the exception propagates. ``sink`` runs outside the lock."""
        delivered = 0
        while limit is None or delivered < limit:
            with self._lock:
                self._settle(self.now())
                if not self._deliveries:
                    break
                delivery = self._deliveries.pop(0)
            try:
                sink(delivery.event)
            except BaseException:
                with self._lock:
                    bisect.insort(self._deliveries, delivery)
                raise
            delivered += 1
        return delivered

    def deliver_due(self, sink: Callable[[Event], None]) -> int:
        """Deliver every event whose time has come; return how many deliveries went."""
        return self.deliver(sink, limit=None)
