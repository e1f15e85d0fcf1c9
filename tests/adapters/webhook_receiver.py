"""A real HTTP endpoint on loopback that receives signed webhooks, for the HTTP tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from refundry.adapters.clock import ManualClock
from refundry.adapters.errors import WebhookRejected
from refundry.adapters.webhook_signing import SIGNATURE_HEADER, receive_webhook


@dataclass
class Receiver:
    url: str
    events: list[Any] = field(default_factory=list)
    rejected: list[Any] = field(default_factory=list)  # what ``rejection`` made of each refusal
    fail_next: int = 0  # answer 500 to this many deliveries first


@contextmanager
def webhook_receiver(
    secret: str,
    clock: ManualClock,
    *,
    receive: Callable[[str, str | None, bytes, datetime], Any] = (
        lambda secret, header, body, now: receive_webhook(secret, header, body, now=now)
    ),
    refused: type[Exception] = WebhookRejected,
    rejection: Callable[[Any], Any] = lambda exc: exc.message,
    path: str = "/hooks/gateway",
) -> Iterator[Receiver]:
    """Payment-gateway webhooks by default; ``receive`` checks and decodes one (raising
    ``refused``), ``rejection`` is what ``rejected`` records of a refusal."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    status = 500
                else:
                    try:
                        header = self.headers.get(SIGNATURE_HEADER)
                        receiver.events.append(receive(secret, header, body, clock()))
                        status = 204
                    except refused as exc:
                        receiver.rejected.append(rejection(exc))
                        status = 400
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
