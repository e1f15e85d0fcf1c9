"""The HTTP poster of the shop's webhooks against real loopback sockets: every outcome is an
answer for the delivery log, never an exception; redirects are not followed."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from refundry.adapters.shop_webhooks import HttpHookPoster

# dev mode's poster: the test servers are on this machine
LOCAL = HttpHookPoster(timeout=5, public_only=False)


@contextmanager
def answering(
    status: int,
    body: bytes = b"",
    location: str | None = None,
    seen: list[bytes] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[str]:
    seen = [] if seen is None else seen

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
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}/hooks?shop=1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_2xx_is_ok_and_the_body_and_headers_arrive() -> None:
    with answering(204) as url:
        answer = LOCAL.post(url, body=b'{"a":1}', headers={"webhook-id": "m"})
    assert (answer.status_code, answer.ok, answer.error) == (204, True, None)
    assert answer.latency_ms >= 0


def test_a_500_keeps_the_start_of_its_body() -> None:
    with answering(500, b"database down") as url:
        answer = LOCAL.post(url, body=b"{}", headers={})
    assert (answer.status_code, answer.ok, answer.error) == (500, False, "database down")


def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    with answering(302, location="https://elsewhere.example/") as url:
        answer = LOCAL.post(url, body=b"{}", headers={})
    assert (answer.status_code, answer.ok) == (302, False)


def test_nothing_listening_is_no_status_and_says_why() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answer = LOCAL.post(f"http://127.0.0.1:{port}/h", body=b"{}", headers={})
    assert (answer.status_code, answer.ok) == (None, False)
    assert answer.error is not None and answer.error.startswith("ConnectionRefusedError")


def test_a_url_http_client_refuses_is_an_answer_not_an_exception() -> None:
    answer = LOCAL.post("http://127.0.0.1:99999/h", body=b"{}", headers={})
    assert (answer.status_code, answer.ok) == (None, False)
    assert answer.error is not None and answer.error.startswith("ValueError")


def test_outside_dev_mode_an_inside_address_is_refused_before_connecting() -> None:
    seen: list[bytes] = []
    with answering(204, seen=seen) as url:
        answer = HttpHookPoster(timeout=2).post(url, body=b"{}", headers={})
        for inside in (url.replace("localhost", "127.0.0.1"), url.replace("localhost", "[::1]")):
            assert HttpHookPoster(timeout=2).post(inside, body=b"{}", headers={}).ok is False
    refusal = "refused: localhost is not a public address"
    assert (answer.status_code, answer.error) == (None, refusal)
    assert seen == []  # nothing reached the server


def test_https_checks_the_certificate_on_the_pinned_connection(tmp_path: Path) -> None:
    """TLS goes to the address checked, with SNI and certificate checks for the URL's host:
    a self-signed certificate fails the check, so nothing is posted."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    seen: list[bytes] = []
    with answering(204, seen=seen, tls=tls) as url:
        answer = LOCAL.post(url, body=b"{}", headers={})
    assert answer.status_code is None
    assert answer.error is not None and answer.error.startswith("SSLCertVerificationError")
    assert seen == []
