"""A real HTTP endpoint on loopback that receives signed webhooks, for the HTTP tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from refundry.adapters.clock import ManualClock
from refundry.adapters.errors import WebhookRejected
from refundry.adapters.gateway import GatewayEvent
from refundry.adapters.webhook_signing import SIGNATURE_HEADER, receive_webhook


@dataclass
class Receiver:
    url: str
    events: list[GatewayEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    fail_next: int = 0  # answer 500 to this many deliveries first


@contextmanager
def webhook_receiver(secret: str, clock: ManualClock) -> Iterator[Receiver]:
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
                        event = receive_webhook(
                            secret, self.headers.get(SIGNATURE_HEADER), body, now=clock()
                        )
                        receiver.events.append(event)
                        status = 204
                    except WebhookRejected as exc:
                        receiver.rejected.append(exc.message)
                        status = 400
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/gateway")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
