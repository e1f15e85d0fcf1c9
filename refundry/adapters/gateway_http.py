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

import json
from urllib.parse import quote

from refundry.adapters.errors import (
    GatewayIdempotencyConflict,
    GatewayProtocolError,
    GatewayTimeout,
    GatewayUnavailable,
)
from refundry.adapters.gateway import GatewayAnswer, answer_from_wire
from refundry.adapters.http_client import JsonHttpClient, error_message

__all__ = ["HttpGateway"]

_REFUSED = 402


class HttpGateway(JsonHttpClient):
    """A ``PaymentGateway`` that calls a gateway's REST API; thread-safe."""

    peer = "the gateway"
    unavailable = GatewayUnavailable
    timed_out = GatewayTimeout
    protocol_error = GatewayProtocolError

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
            raise GatewayIdempotencyConflict(error_message(doc, status))
        if status == 429 or status >= 500:
            raise GatewayUnavailable(error_message(doc, status))
        if status in (401, 403):
            raise GatewayProtocolError(error_message(doc, status), code="gateway.unauthorized")
        raise GatewayProtocolError(error_message(doc, status))
