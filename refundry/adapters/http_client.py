"""What the HTTP adapters (payment gateway, logistics) share: one JSON call per connection,
with their timeouts, mapped onto the adapter's own errors.

Nothing connected → ``unavailable``; connected, then no answer in time or the connection broke →
``timed_out`` (the outcome is unknown); a body that is not JSON → ``protocol_error``.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from refundry.domain.errors import RefundryError

__all__ = ["JsonHttpClient", "error_message"]


class JsonHttpClient:
    """Base of the REST adapters: thread-safe (one connection per call)."""

    peer = "the server"  # how messages name the other side
    unavailable: type[RefundryError]
    timed_out: type[RefundryError]
    protocol_error: type[RefundryError]

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        api_key: str | None = None,
    ) -> None:
        """``timeout`` bounds each wait for an answer, in seconds; ``connect_timeout``
        (default: ``timeout``) bounds reaching the server."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {base_url!r}")
        if timeout <= 0 or (connect_timeout is not None and connect_timeout <= 0):
            raise ValueError("timeouts must be positive")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._connect_timeout = timeout if connect_timeout is None else connect_timeout
        self._api_key = api_key

    def __repr__(self) -> str:
        scheme = "https" if self._https else "http"
        port = f":{self._port}" if self._port else ""
        return (
            f"{type(self).__name__}({scheme}://{self._host}{port}{self._prefix}, "
            f"timeout={self._timeout})"
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, object]:
        sent = {"Accept": "application/json", **(headers or {})}
        if self._api_key is not None:
            sent["Authorization"] = f"Bearer {self._api_key}"
        connection_type = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = connection_type(self._host, self._port, timeout=self._connect_timeout)
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise self.unavailable(f"cannot reach {self.peer}: {exc!r}") from exc
            if conn.sock is not None:
                conn.sock.settimeout(self._timeout)
            try:
                conn.request(method, self._prefix + path, body=body, headers=sent)
                response = conn.getresponse()
                payload = response.read()
            except TimeoutError as exc:
                raise self.timed_out(f"no answer within {self._timeout}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise self.timed_out(f"connection broke before the answer: {exc!r}") from exc
        finally:
            conn.close()
        if not payload:
            return response.status, None
        try:
            return response.status, json.loads(payload)
        except ValueError:
            raise self.protocol_error(
                f"HTTP {response.status} with a body that is not JSON: {payload[:200]!r}"
            ) from None


def error_message(doc: object, status: int) -> str:
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"HTTP {status}: {error['message']}"
    return f"HTTP {status}"
