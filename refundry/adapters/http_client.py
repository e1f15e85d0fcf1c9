"""What the HTTP adapters (payment gateway, logistics, SMS) share: JSON calls over one pooled
``httpx.Client`` (keep-alive, up to ``max_connections`` at once), mapped onto the adapter's own
errors.

Nothing connected (or no pooled connection free in time) → ``unavailable``: nothing was sent;
connected, then no answer in time or the connection broke → ``timed_out`` (the outcome is
unknown); a body that is not JSON → ``protocol_error``. A call that fails on a connection
closes it (httpx does), so a timed-out call never leaves a half-read answer in the pool.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx

from refundry.domain.errors import RefundryError

__all__ = ["JsonHttpClient", "error_message"]


class JsonHttpClient:
    """Base of the REST adapters: thread-safe (httpx's client and its pool are)."""

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
        max_connections: int = 32,
    ) -> None:
        """``timeout`` bounds each wait for an answer, in seconds; ``connect_timeout``
        (default: ``timeout``) bounds reaching the server, and waiting for a pooled
        connection; ``max_connections``: calls in flight at once (the relay's concurrency)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {base_url!r}")
        if timeout <= 0 or (connect_timeout is not None and connect_timeout <= 0):
            raise ValueError("timeouts must be positive")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._timeout = timeout
        connect = timeout if connect_timeout is None else connect_timeout
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=self._base,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect, pool=connect),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment between us and the gateway
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base}, timeout={self._timeout})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, object]:
        try:
            response = self._client.request(method, path, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self.unavailable(f"cannot reach {self.peer}: {exc!r}") from exc
        except httpx.TimeoutException as exc:
            raise self.timed_out(f"no answer within {self._timeout}s") from exc
        except httpx.TransportError as exc:
            raise self.timed_out(f"connection broke before the answer: {exc!r}") from exc
        payload = response.content
        if not payload:
            return response.status_code, None
        try:
            return response.status_code, json.loads(payload)
        except ValueError:
            raise self.protocol_error(
                f"HTTP {response.status_code} with a body that is not JSON: {payload[:200]!r}"
            ) from None


def error_message(doc: object, status: int) -> str:
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"HTTP {status}: {error['message']}"
    return f"HTTP {status}"
