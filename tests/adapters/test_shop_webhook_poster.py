"""The HTTP poster of the shop's webhooks against real loopback sockets: every outcome is an
answer for the delivery log, never an exception; redirects are not followed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from refundry.adapters.shop_webhooks import HttpHookPoster


@contextmanager
def answering(status: int, body: bytes = b"", location: str | None = None) -> Iterator[str]:
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks?shop=1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_2xx_is_ok_and_the_body_and_headers_arrive() -> None:
    with answering(204) as url:
        answer = HttpHookPoster(timeout=5).post(url, body=b'{"a":1}', headers={"webhook-id": "m"})
    assert (answer.status_code, answer.ok, answer.error) == (204, True, None)
    assert answer.latency_ms >= 0


def test_a_500_keeps_the_start_of_its_body() -> None:
    with answering(500, b"database down") as url:
        answer = HttpHookPoster(timeout=5).post(url, body=b"{}", headers={})
    assert (answer.status_code, answer.ok, answer.error) == (500, False, "database down")


def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    with answering(302, location="https://elsewhere.example/") as url:
        answer = HttpHookPoster(timeout=5).post(url, body=b"{}", headers={})
    assert (answer.status_code, answer.ok) == (302, False)


def test_nothing_listening_is_no_status_and_says_why() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answer = HttpHookPoster(timeout=2).post(f"http://127.0.0.1:{port}/h", body=b"{}", headers={})
    assert (answer.status_code, answer.ok) == (None, False)
    assert answer.error is not None and answer.error.startswith("ConnectionRefusedError")


def test_a_url_http_client_refuses_is_an_answer_not_an_exception() -> None:
    answer = HttpHookPoster(timeout=2).post("http://127.0.0.1:99999/h", body=b"{}", headers={})
    assert (answer.status_code, answer.ok) == (None, False)
    assert answer.error is not None and answer.error.startswith("ValueError")
