"""HttpGateway: the ``PaymentGateway`` over a small Stripe-like REST protocol.

    POST /v1/refunds                        Idempotency-Key: <key>
         {"charge": "<transaction id>", "amount": <int minor units>, "currency": "EUR"}
         200 refund object | 402 error object (refused) | 409 key reused | 5xx, 429 try later
    GET  /v1/refunds?idempotency_key=<key>
         200 refund object | 402 error object (refused at once) | 404 unknown key

How failures map (see ``errors``): nothing connected → ``GatewayUnavailable``; connected, then
no answer in time or the connection broke → ``GatewayTimeout`` (outcome unknown); 5xx and 429 →
``GatewayUnavailable``; an answer we cannot read → ``GatewayProtocolError``.

One connection per call: nothing is shared between threads, and a call that timed out never
leaves a half-read response on a pooled connection.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

from refundry.adapters.errors import (
    GatewayIdempotencyConflict,
    GatewayProtocolError,
    GatewayTimeout,
    GatewayUnavailable,
)
from refundry.adapters.gateway import GatewayAnswer, answer_from_wire

__all__ = ["HttpGateway"]

_REFUSED = 402


class HttpGateway:
    """A ``PaymentGateway`` that calls a gateway's REST API; thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        api_key: str | None = None,
    ) -> None:
        """``timeout`` bounds each wait for the gateway, in seconds; ``connect_timeout``
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
        return f"HttpGateway({scheme}://{self._host}{port}{self._prefix}, timeout={self._timeout})"

    def refund(
        self, *, idempotency_key: str, transaction_id: str, amount: int, currency: str
    ) -> GatewayAnswer:
        if type(amount) is not int:
            raise TypeError(f"amount must be int minor units, got {amount!r}")
        if not idempotency_key:
            raise ValueError("idempotency_key must not be empty")
        body = json.dumps({"charge": transaction_id, "amount": amount, "currency": currency})
        status, doc = self._call(
            "POST",
            "/v1/refunds",
            body=body.encode(),
            headers={"Idempotency-Key": idempotency_key, "Content-Type": "application/json"},
        )
        if status == 404:
            raise GatewayProtocolError("POST /v1/refunds answered 404: wrong base_url?")
        answer = self._answer(status, doc)
        echoed = answer.raw.get("idempotency_key")
        if answer.gateway_refund_id is not None and echoed != idempotency_key:
            raise GatewayProtocolError(
                f"asked under key {idempotency_key!r}, answered for key {echoed!r}"
            )
        return answer

    def lookup(self, *, idempotency_key: str) -> GatewayAnswer | None:
        status, doc = self._call(
            "GET", f"/v1/refunds?idempotency_key={quote(idempotency_key, safe='')}"
        )
        if status == 404:
            return None
        return self._answer(status, doc)

    def _answer(self, status: int, doc: object) -> GatewayAnswer:
        if status in (200, 201, _REFUSED):
            answer = answer_from_wire(doc)
            if (status == _REFUSED) != (answer.gateway_refund_id is None):
                raise GatewayProtocolError(f"HTTP {status} does not fit the body it carries")
            return answer
        if status == 409:
            raise GatewayIdempotencyConflict(_error_message(doc, status))
        if status == 429 or status >= 500:
            raise GatewayUnavailable(_error_message(doc, status))
        if status in (401, 403):
            raise GatewayProtocolError(_error_message(doc, status), code="gateway.unauthorized")
        raise GatewayProtocolError(_error_message(doc, status))

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
                raise GatewayUnavailable(f"cannot reach the gateway: {exc!r}") from exc
            if conn.sock is not None:
                conn.sock.settimeout(self._timeout)
            try:
                conn.request(method, self._prefix + path, body=body, headers=sent)
                response = conn.getresponse()
                payload = response.read()
            except TimeoutError as exc:
                raise GatewayTimeout(f"no answer within {self._timeout}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise GatewayTimeout(f"connection broke before the answer: {exc!r}") from exc
        finally:
            conn.close()
        if not payload:
            return response.status, None
        try:
            return response.status, json.loads(payload)
        except ValueError:
            raise GatewayProtocolError(
                f"HTTP {response.status} with a body that is not JSON: {payload[:200]!r}"
            ) from None


def _error_message(doc: object, status: int) -> str:
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"HTTP {status}: {error['message']}"
    return f"HTTP {status}"
