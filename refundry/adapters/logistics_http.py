"""HttpLogistics: the ``LogisticsProvider`` over a small REST protocol.

    POST /v1/returns                        Idempotency-Key: <key>
         {"rma": "...", "service": "prepaid_label" | "pickup",
          "from_address": "...", "to_address": "..."}
         200 return object | 422 error object (refused: code, message, param)
         409 key reused with other parameters | 5xx, 429 try later | 400 malformed request
    GET  /v1/returns/<tracking number>
         200 return object with its scans ("events") | 404 unknown tracking number

How failures map (see ``logistics``): nothing connected → ``LogisticsUnavailable``; connected,
then no answer in time or the connection broke → ``LogisticsTimeout`` (outcome unknown); 5xx
and 429 → ``LogisticsUnavailable``; 422 → ``LogisticsRefused``; 409 →
``LogisticsIdempotencyConflict``; an answer we cannot read → ``LogisticsProtocolError``.

One connection per call: nothing is shared between threads, and a call that timed out never
leaves a half-read response on a pooled connection.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

from refundry.adapters.logistics import (
    LogisticsIdempotencyConflict,
    LogisticsProtocolError,
    LogisticsTimeout,
    LogisticsUnavailable,
    ReturnBooking,
    ReturnTracking,
    booking_from_wire,
    tracking_from_wire,
)

__all__ = ["HttpLogistics"]

_REFUSED = 422


class HttpLogistics:
    """A ``LogisticsProvider`` that calls a carrier's REST API; thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        api_key: str | None = None,
    ) -> None:
        """``timeout`` bounds each wait for the carrier, in seconds; ``connect_timeout``
        (default: ``timeout``) bounds reaching it."""
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
            f"HttpLogistics({scheme}://{self._host}{port}{self._prefix}, timeout={self._timeout})"
        )

    def book_return(
        self, *, rma: str, service: str, from_address: str, to_address: str, key: str
    ) -> ReturnBooking:
        if not key:
            raise ValueError("key must not be empty")
        body = json.dumps(
            {"rma": rma, "service": service, "from_address": from_address, "to_address": to_address}
        )
        status, doc = self._call(
            "POST",
            "/v1/returns",
            body=body.encode(),
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
        if status == 404:
            raise LogisticsProtocolError("POST /v1/returns answered 404: wrong base_url?")
        if status == _REFUSED:
            if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
                booking_from_wire(doc)  # an error object: raises LogisticsRefused
            raise LogisticsProtocolError(f"HTTP {status} without an error object")
        if status in (200, 201):
            if not isinstance(doc, dict) or "error" in doc:
                raise LogisticsProtocolError(f"HTTP {status} without a return object")
            booking = booking_from_wire(doc)
            if doc.get("idempotency_key") != key or doc.get("rma") != rma:
                raise LogisticsProtocolError(
                    f"asked under key {key!r} for {rma!r}, answered for key "
                    f"{doc.get('idempotency_key')!r} and {doc.get('rma')!r}"
                )
            return booking
        raise self._failure(status, doc)

    def track(self, tracking_number: str) -> ReturnTracking | None:
        """What the carrier knows now of a return: its scans so far; None if unknown."""
        if not tracking_number:
            raise ValueError("tracking_number must not be empty")
        status, doc = self._call("GET", f"/v1/returns/{quote(tracking_number, safe='')}")
        if status == 404:
            return None
        if status == 200:
            tracking = tracking_from_wire(doc)
            if tracking.booking.tracking_number != tracking_number:
                raise LogisticsProtocolError(
                    f"asked for {tracking_number!r}, answered for "
                    f"{tracking.booking.tracking_number!r}"
                )
            return tracking
        raise self._failure(status, doc)

    def _failure(self, status: int, doc: object) -> Exception:
        if status == 409:
            return LogisticsIdempotencyConflict(_error_message(doc, status))
        if status == 429 or status >= 500:
            return LogisticsUnavailable(_error_message(doc, status))
        if status in (401, 403):
            return LogisticsProtocolError(
                _error_message(doc, status), code="logistics.unauthorized"
            )
        return LogisticsProtocolError(_error_message(doc, status))

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
                raise LogisticsUnavailable(f"cannot reach the carrier: {exc!r}") from exc
            if conn.sock is not None:
                conn.sock.settimeout(self._timeout)
            try:
                conn.request(method, self._prefix + path, body=body, headers=sent)
                response = conn.getresponse()
                payload = response.read()
            except TimeoutError as exc:
                raise LogisticsTimeout(f"no answer within {self._timeout}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise LogisticsTimeout(f"connection broke before the answer: {exc!r}") from exc
        finally:
            conn.close()
        if not payload:
            return response.status, None
        try:
            return response.status, json.loads(payload)
        except ValueError:
            raise LogisticsProtocolError(
                f"HTTP {response.status} with a body that is not JSON: {payload[:200]!r}"
            ) from None


def _error_message(doc: object, status: int) -> str:
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"HTTP {status}: {error['message']}"
    return f"HTTP {status}"
