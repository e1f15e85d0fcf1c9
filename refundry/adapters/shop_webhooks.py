"""Posting a signed webhook to a shop's endpoint (services/shop_webhooks/delivery.py signs and
schedules; this only carries the bytes).

``HttpHookPoster`` makes one HTTP(S) POST per call (a fresh connection: endpoints are many and
each call is bounded by ``timeout``); ``SandboxHookPoster`` sends nothing, keeps each post and
answers 200 (setting ``webhook_delivery = "sandbox"``). Neither raises: every outcome is a
:class:`HookAnswer`, which the delivery log records.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
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
    Webhooks senders do: the signed request goes to the URL registered, nowhere else).

    ``public_only`` (outside dev mode): the host's name is resolved first and the post is
    refused when any of its addresses is not a public one (loopback, private, link-local,
    reserved); the connection then goes to the address checked, not to a second lookup of the
    name, so a name that changes its answer between the two cannot reach the inside network.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        public_only: bool = True,
        user_agent: str = "refundry-webhooks/1",
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._timeout = timeout
        self._public_only = public_only
        self._agent = user_agent

    def __repr__(self) -> str:
        return f"HttpHookPoster(timeout={self._timeout}, public_only={self._public_only})"

    def post(self, url: str, *, body: bytes, headers: dict[str, str]) -> HookAnswer:
        started = time.perf_counter()
        conn: http.client.HTTPConnection | None = None
        try:
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            https = parts.scheme == "https"
            host, port = parts.hostname or "", parts.port or (443 if https else 80)
            address = self._address(host, port)
            if address is None:
                return HookAnswer(None, _ms(started), f"refused: {host} is not a public address")
            kind = _PinnedHTTPS if https else _PinnedHTTP
            conn = kind(host, port, timeout=self._timeout, address=address)
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

    def _address(self, host: str, port: int) -> str | None:
        """The address to connect to; None when ``public_only`` and it is not public."""
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in found]
        if self._public_only and not all(
            ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses
        ):
            return None
        return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to ``address`` (already resolved and checked) for ``host``."""

    def __init__(self, host: str, port: int, *, timeout: float, address: str) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As _PinnedHTTP, with TLS: the certificate is checked against ``host`` (SNI too)."""

    def __init__(self, host: str, port: int, *, timeout: float, address: str) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


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
