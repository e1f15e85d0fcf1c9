"""SMS channels. ``SandboxSms`` keeps what it would have sent (tests, the demo, one-time codes);
it behaves like a provider that deduplicates on the caller's key."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["SandboxSms", "SentSms"]


@dataclass(frozen=True, slots=True)
class SentSms:
    phone: str
    text: str
    key: str


class SandboxSms:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, SentSms] = {}
        self.attempts = 0

    def send(self, *, phone: str, text: str, key: str) -> None:
        with self._lock:
            self.attempts += 1
            self._by_key.setdefault(key, SentSms(phone, text, key))

    @property
    def sent(self) -> list[SentSms]:
        with self._lock:
            return list(self._by_key.values())

    def last_to(self, phone: str) -> SentSms | None:
        with self._lock:
            mine = [m for m in self._by_key.values() if m.phone == phone]
        return mine[-1] if mine else None
