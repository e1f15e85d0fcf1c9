"""The logistics sandbox behind a real HTTP server on loopback, speaking ``logistics_http``'s
protocol.

When the sandbox decides a call times out, the server holds the connection without answering
until the client gives up (or ``stall_limit`` passes), then drops it: the client sees a real
socket timeout. Tracking webhooks are POSTed to ``webhook_url``, signed with ``webhook_secret``
(``Refundry-Signature``, see ``webhook_signing``), when ``deliver_webhooks()`` is called or, with
``webhook_interval``, by a background pump. A delivery the receiver does not take with a 2xx
stays queued and raises ``WebhookDeliveryFailed`` (the same class the gateway's server raises).
"""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

from refundry.adapters.http_sandbox import (
    LoopbackServer,
    SandboxHandler,
    WebhookDeliveryFailed,
    WebhookingServer,
)
from refundry.adapters.logistics import (
    Json,
    LogisticsIdempotencyConflict,
    LogisticsRefused,
    LogisticsTimeout,
    LogisticsUnavailable,
    TrackingEvent,
    error_object,
    event_to_body,
)
from refundry.adapters.logistics_sandbox import SandboxLogistics

__all__ = ["LogisticsHttpServer", "WebhookDeliveryFailed", "serve_logistics_http"]

_RETURNS = "/v1/returns"
_FIELDS = ("rma", "service", "from_address", "to_address")


class LogisticsHttpServer(WebhookingServer[SandboxLogistics, TrackingEvent]):
    """A running HTTP logistics sandbox. Use as a context manager, or call ``close()``."""


def serve_logistics_http(
    sandbox: SandboxLogistics,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | bytes | None = None,
    webhook_interval: float | None = None,
    api_key: str | None = None,
    stall_limit: float = 30.0,
) -> LogisticsHttpServer:
    """Serve ``sandbox`` over HTTP in background threads; ``port=0`` picks a free port.

    With ``api_key`` set, calls must carry ``Authorization: Bearer <api_key>``.
    """
    server = _Server((host, port), _Handler, api_key=api_key, stall_limit=stall_limit)
    server.sandbox = sandbox
    return LogisticsHttpServer(
        sandbox,
        server,
        to_body=event_to_body,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_interval=webhook_interval,
    )


class _Server(LoopbackServer):
    sandbox: SandboxLogistics


class _Handler(SandboxHandler):
    server: _Server
    log_label = "logistics sandbox http"
    unauthorized = error_object(code="unauthorized", message="bad API key", kind="auth")

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if urlsplit(self.path).path != _RETURNS:
            self._send(404, error_object(code="resource_missing", message=self.path, kind="api"))
            return
        key = self.headers.get("Idempotency-Key")
        params = self._booking_params()
        if params is None or not key:
            self._send(400, _invalid(f"needs Idempotency-Key and string {', '.join(_FIELDS)}"))
            return
        rma, service, from_address, to_address = params
        try:
            booking = self.server.sandbox.book_return(
                rma=rma, service=service, from_address=from_address, to_address=to_address, key=key
            )
        except LogisticsTimeout:
            self._stall()
        except LogisticsUnavailable as exc:
            self._send(503, error_object(code="unavailable", message=exc.message, kind="api"))
        except LogisticsIdempotencyConflict as exc:
            reused = error_object(code="idempotency_key_reused", message=exc.message)
            self._send(409, reused)
        except LogisticsRefused as exc:
            self._send(422, error_object(code=exc.reason, message=exc.message, param=exc.field))
        except (TypeError, ValueError) as exc:
            self._send(400, _invalid(str(exc)))
        else:
            self._send_return(booking.tracking_number)

    def do_GET(self) -> None:
        if not self._authorized():
            return
        path = urlsplit(self.path).path
        tracking_number = unquote(path.removeprefix(_RETURNS + "/"))
        if not path.startswith(_RETURNS + "/") or not tracking_number or "/" in tracking_number:
            self._send(404, error_object(code="resource_missing", message=self.path, kind="api"))
            return
        self._send_return(tracking_number)

    def _send_return(self, tracking_number: str) -> None:
        doc = self.server.sandbox.return_wire(tracking_number)
        if doc is None:
            self._send(404, error_object(code="resource_missing", message="no such return"))
        else:
            self._send(200, doc)

    def _booking_params(self) -> tuple[str, str, str, str] | None:
        try:
            doc = json.loads(self._read_body())
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        values = [doc.get(name) for name in _FIELDS]
        strings = [v for v in values if isinstance(v, str)]
        if len(strings) != len(_FIELDS):
            return None
        rma, service, from_address, to_address = strings
        return rma, service, from_address, to_address


def _invalid(message: str) -> Json:
    return error_object(code="parameter_invalid", message=message, kind="invalid_request")
