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

import json
from urllib.parse import quote

from refundry.adapters.http_client import JsonHttpClient, error_message
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


class HttpLogistics(JsonHttpClient):
    """A ``LogisticsProvider`` that calls a carrier's REST API; thread-safe."""

    peer = "the carrier"
    unavailable = LogisticsUnavailable
    timed_out = LogisticsTimeout
    protocol_error = LogisticsProtocolError

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
            return LogisticsIdempotencyConflict(error_message(doc, status))
        if status == 429 or status >= 500:
            return LogisticsUnavailable(error_message(doc, status))
        if status in (401, 403):
            return LogisticsProtocolError(error_message(doc, status), code="logistics.unauthorized")
        return LogisticsProtocolError(error_message(doc, status))
