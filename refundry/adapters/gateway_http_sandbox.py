"""The sandbox behind a real HTTP server on loopback, speaking ``gateway_http``'s protocol.

When the sandbox decides a call times out, the server holds the connection without answering
until the client gives up (or ``stall_limit`` passes), then drops it: the client sees a real
socket timeout. Webhooks are POSTed to ``webhook_url``, signed with ``webhook_secret``
(``Refundry-Signature``), when ``deliver_webhooks()`` is called or, with ``webhook_interval``,
by a background pump. A delivery the receiver does not take with a 2xx stays queued.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from refundry.adapters.errors import GatewayIdempotencyConflict, GatewayTimeout, GatewayUnavailable
from refundry.adapters.gateway import GatewayAnswer, GatewayEvent, Json, error_object, event_to_body
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.http_sandbox import (
    LoopbackServer,
    SandboxHandler,
    WebhookDeliveryFailed,
    WebhookingServer,
)

__all__ = ["SandboxHttpServer", "WebhookDeliveryFailed", "serve_sandbox_http"]


class SandboxHttpServer(WebhookingServer[SandboxGateway, GatewayEvent]):
    """A running HTTP sandbox. Use as a context manager, or call ``close()``."""


def serve_sandbox_http(
    sandbox: SandboxGateway,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | bytes | None = None,
    webhook_interval: float | None = None,
    api_key: str | None = None,
    stall_limit: float = 30.0,
) -> SandboxHttpServer:
    """Serve ``sandbox`` over HTTP in background threads; ``port=0`` picks a free port.

    With ``api_key`` set, calls must carry ``Authorization: Bearer <api_key>``.
    """
    server = _Server((host, port), _Handler, api_key=api_key, stall_limit=stall_limit)
    server.sandbox = sandbox
    return SandboxHttpServer(
        sandbox,
        server,
        to_body=event_to_body,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_interval=webhook_interval,
    )


class _Server(LoopbackServer):
    sandbox: SandboxGateway


class _Handler(SandboxHandler):
    server: _Server
    log_label = "sandbox http"
    unauthorized = error_object(code="unauthorized", message="bad API key", kind="auth")

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if urlsplit(self.path).path != "/v1/refunds":
            self._send(404, error_object(code="resource_missing", message=self.path))
            return
        key = self.headers.get("Idempotency-Key")
        params = self._refund_params()
        if params is None or not key:
            self._send(400, _invalid("needs Idempotency-Key, charge, integer amount, currency"))
            return
        transaction_id, amount, currency = params
        try:
            answer = self.server.sandbox.refund(
                idempotency_key=key, transaction_id=transaction_id, amount=amount, currency=currency
            )
        except GatewayTimeout:
            self._stall()
        except GatewayUnavailable as exc:
            self._send(503, error_object(code="unavailable", message=exc.message, kind="api_error"))
        except GatewayIdempotencyConflict as exc:
            self._send(
                409,
                error_object(
                    code="idempotency_key_reused", message=exc.message, kind="idempotency_error"
                ),
            )
        except (TypeError, ValueError) as exc:
            self._send(400, _invalid(str(exc)))
        else:
            self._send_answer(answer)

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urlsplit(self.path)
        keys = parse_qs(url.query).get("idempotency_key", [])
        if url.path != "/v1/refunds" or len(keys) != 1:
            self._send(404, error_object(code="resource_missing", message=self.path))
            return
        answer = self.server.sandbox.lookup(idempotency_key=keys[0])
        if answer is None:
            self._send(404, error_object(code="resource_missing", message="no such refund"))
        else:
            self._send_answer(answer)

    def _refund_params(self) -> tuple[str, int, str] | None:
        doc: dict[str, object]
        try:
            raw = self._read_body()
            if self.headers.get_content_type() == "application/x-www-form-urlencoded":
                form = parse_qs(raw.decode(), strict_parsing=True)
                doc = {k: v[0] for k, v in form.items()}
                if isinstance(doc.get("amount"), str) and str(doc["amount"]).isdigit():
                    doc["amount"] = int(str(doc["amount"]))
            else:
                loaded = json.loads(raw)
                if not isinstance(loaded, dict):
                    return None
                doc = loaded
        except ValueError:
            return None
        transaction_id = doc.get("charge", doc.get("transaction_id"))
        amount, currency = doc.get("amount"), doc.get("currency")
        if not isinstance(transaction_id, str) or not isinstance(currency, str):
            return None
        if type(amount) is not int:
            return None
        return transaction_id, amount, currency

    def _send_answer(self, answer: GatewayAnswer) -> None:
        self._send(200 if answer.gateway_refund_id is not None else 402, answer.raw)


def _invalid(message: str) -> Json:
    return error_object(code="parameter_invalid", message=message, kind="invalid_request_error")
