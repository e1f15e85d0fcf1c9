"""What the HTTP sandboxes (payment gateway, logistics) share: a threaded loopback server that
can be stopped, a request handler's API-key check, JSON answers and stalled (timed-out) calls,
and the signed webhook deliveries it POSTs to the receiver.

A delivery the receiver does not take with a 2xx stays queued in the sandbox and raises
``WebhookDeliveryFailed``; with ``webhook_interval`` a background pump delivers what is due.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from refundry.adapters.webhook_signing import SIGNATURE_HEADER, sign_webhook

__all__ = ["LoopbackServer", "SandboxHandler", "WebhookDeliveryFailed", "WebhookingServer"]

log = logging.getLogger(__name__)


class _Event(Protocol):
    @property
    def event_id(self) -> str: ...


Event = TypeVar("Event", bound=_Event)


class _Sandbox(Protocol[Event]):  # type: ignore[misc]
    """What a sandbox offers its server: the due events, handed one by one, and its clock."""

    def deliver_due(self, send: Callable[[Event], None]) -> int: ...

    def now(self) -> datetime: ...


Sandbox = TypeVar("Sandbox", bound=_Sandbox[Any])


class WebhookDeliveryFailed(Exception):
    """The webhook receiver did not take a delivery; it stays queued in the sandbox."""


class LoopbackServer(ThreadingHTTPServer):
    """``api_key``: calls must carry ``Authorization: Bearer <api_key>`` (None: no check);
    ``stall_limit``: the longest a timed-out call is held before its connection is dropped."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connects when many workers call at once

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        api_key: str | None = None,
        stall_limit: float = 30.0,
    ) -> None:
        super().__init__(address, handler)
        self.stopping = threading.Event()
        self.api_key = api_key
        self.stall_limit = stall_limit


class SandboxHandler(BaseHTTPRequestHandler):
    """A sandbox's request handler: each protocol adds its routes (``do_POST``, ``do_GET``) and
    sets ``unauthorized``, the body of its 401 answer to a call without the right API key."""

    server: LoopbackServer
    log_label = "sandbox http"
    unauthorized: ClassVar[Any]
    # Keep-alive, as real gateways answer: a pooled client reuses its connections. Nagle off:
    # headers and body are two writes, and the second would wait for the client's delayed ACK.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    _body_read = False

    def _read_body(self) -> bytes:
        """The request's body (read once; an answer sent without reading it closes the
        connection, so unread bytes never pass for the next request)."""
        self._body_read = True
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: object) -> None:
        log.debug(self.log_label + ": " + format, *args)

    def _authorized(self) -> bool:
        expected = self.server.api_key
        if expected is None or self.headers.get("Authorization") == f"Bearer {expected}":
            return True
        self._send(401, self.unauthorized)
        return False

    def _send(self, status: int, body: Any) -> None:
        if not self._body_read and int(self.headers.get("Content-Length") or 0):
            self.close_connection = True
        self._body_read = False  # the next request on this connection reads its own
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _stall(self) -> None:
        """Answer nothing until the client hangs up, then drop the connection."""
        deadline = time.monotonic() + self.server.stall_limit
        sock = self.connection
        while not self.server.stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.02)
            if readable:
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break  # the client closed its end: it has given up
                except OSError:
                    break
                time.sleep(0.02)  # it sent more bytes; keep waiting without spinning
        self.close_connection = True


class WebhookingServer(Generic[Sandbox, Event]):
    """A running HTTP sandbox (``sandbox``) that POSTs its due events as signed webhooks (the
    body of each from ``to_body``). Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        sandbox: Sandbox,
        server: LoopbackServer,
        *,
        to_body: Callable[[Event], bytes],
        webhook_url: str | None,
        webhook_secret: str | bytes | None,
        webhook_interval: float | None,
    ) -> None:
        self.sandbox = sandbox
        self._server = server
        self._deliver_due = sandbox.deliver_due
        self._now = sandbox.now
        self._to_body = to_body
        self._webhook_url = webhook_url
        self._webhook_secret = webhook_secret
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._threads = [threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)]
        if webhook_interval is not None:
            self._threads.append(
                threading.Thread(target=self._pump, args=(webhook_interval,), daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def deliver_webhooks(self) -> int:
        """POST every due webhook to ``webhook_url``; return how many the receiver took."""
        return self._deliver_due(self._post)

    def _post(self, event: Event) -> None:
        if self._webhook_url is None or self._webhook_secret is None:
            raise WebhookDeliveryFailed("no webhook_url and webhook_secret configured")
        body = self._to_body(event)
        signature = sign_webhook(self._webhook_secret, self._now(), body)
        request = urllib.request.Request(
            self._webhook_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise WebhookDeliveryFailed(f"{event.event_id} not taken: {exc}") from exc

    def _pump(self, interval: float) -> None:
        while not self._server.stopping.wait(interval):
            try:
                self.deliver_webhooks()
            except WebhookDeliveryFailed as exc:
                log.warning("webhook delivery failed, will retry: %s", exc)
