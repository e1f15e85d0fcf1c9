"""Posting a signed webhook to a shop's endpoint (services/shop_webhooks/delivery.py signs and
schedules; this only carries the bytes).

``HttpHookPoster`` makes one HTTP(S) POST per call (a fresh connection: endpoints are many and
each call is bounded by ``timeout``); ``SandboxHookPoster`` sends nothing, keeps each post and
answers 200 (setting ``webhook_delivery = "sandbox"``). Neither raises: every outcome is a
:class:`HookAnswer`, which the delivery log records.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["HookAnswer", "HookPoster", "HttpHookPoster", "SandboxHookPoster"]


@dataclass(frozen=True, slots=True)
class HookAnswer:
    status_code: int | None  # None: nothing answered (refused, timed out, broken)
    latency_ms: int
    error: str | None = None  # why there is no answer, or the start of a non-2xx body

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class HookPoster(Protocol):
    def post(self, url: str, *, body: bytes, headers: dict[str, str]) -> HookAnswer: ...


class HttpHookPoster:
    """POSTs over http.client; redirects are not followed (a 3xx is a failure, as Standard
    Webhooks senders do: the signed request goes to the URL registered, nowhere else)."""

    def __init__(self, *, timeout: float = 10.0, user_agent: str = "refundry-webhooks/1") -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._timeout = timeout
        self._agent = user_agent

    def __repr__(self) -> str:
        return f"HttpHookPoster(timeout={self._timeout})"

    def post(self, url: str, *, body: bytes, headers: dict[str, str]) -> HookAnswer:
        started = time.perf_counter()
        conn: http.client.HTTPConnection | None = None
        try:
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            https = parts.scheme == "https"
            kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
            conn = kind(parts.hostname or "", parts.port, timeout=self._timeout)
            conn.request(
                "POST",
                path,
                body=body,
                headers={"Content-Type": "application/json", "User-Agent": self._agent, **headers},
            )
            response = conn.getresponse()
            text = response.read(1024).decode("utf-8", "replace")
        # ValueError: a URL http.client will not send (a bad port, characters it refuses)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return HookAnswer(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
        finally:
            if conn is not None:
                conn.close()
        status = response.status
        error = None if 200 <= status < 300 else (text[:500] or response.reason)
        return HookAnswer(status, _ms(started), error)


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


@dataclass
class SandboxHookPoster:
    """Sends nothing; keeps (url, body, headers) of every post and answers 200."""

    posts: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def post(self, url: str, *, body: bytes, headers: dict[str, str]) -> HookAnswer:
        with self._lock:
            self.posts.append((url, body, dict(headers)))
        return HookAnswer(200, 0)
