"""Domain event publishers. ``RecordingPublisher`` keeps events in memory (tests, the demo);
a broker-backed publisher arrives with the case process."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["RecordingPublisher"]


class RecordingPublisher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries = 0

    def publish(self, event: dict[str, Any], *, key: str) -> None:
        with self._lock:
            self.deliveries += 1
            self.events.setdefault(key, event)
