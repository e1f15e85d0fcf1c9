"""Request limits however the request arrives (issue 16 point 1), over a real uvicorn server.

A chunked body carries no Content-Length, so the limit must count the bytes ``receive()``
delivers. These tests send bodies with ``Transfer-Encoding: chunked`` on a raw socket (httpx
would add a Content-Length to a bytes body) to the unauthenticated gateway webhook, to
``POST /v1/cases`` with an ``Idempotency-Key``, and to ``POST /v1/orders`` within the limit;
and headers over their bounds; on SQLite and on PostgreSQL, checking every table is unchanged
after a refusal. The unit tests at the end pin what the middlewares read: never a chunk past
the limit, and many small chunks in linear time.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine
from starlette.types import Message, Receive, Scope, Send

from refundry.api.auth import issue_token
from refundry.api.idempotency import IdempotencyMiddleware
from refundry.api.limits import MAX_HEADER_BYTES, MAX_HEADERS, RequestLimits
from refundry.demo import worked_examples as ex
from refundry.services.claims import Claim
from refundry.store.engine import make_engine
from tests.api.conftest import db_snapshot, snapshot_diff
from tests.api.test_real_server import SECRET, _start

LIMIT = 256 * 1024  # Settings.max_body_bytes: what the server runs with by default
CHUNK = 64 * 1024
PROBLEM = "application/problem+json"


@dataclass
class Served:
    base: str
    engine: Engine

    def token(self, role: str, subject: str) -> str:
        token = issue_token(SECRET.encode(), role=role, subject=subject, now=datetime.now(UTC))
        return f"Bearer {token}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("limits")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'refundry.sqlite'}"
        yield from _serve(url, tmp)
        return
    from tests.conftest import _drop_pg, _fresh_pg

    url = _fresh_pg(request.getfixturevalue("pg_url"))
    try:
        yield from _serve(url, tmp)
    finally:
        _drop_pg(url)


def _serve(url: str, tmp: Path) -> Iterator[Served]:
    for server in _start(url, tmp):
        engine = make_engine(url)
        try:
            yield Served(server.base, engine)
        finally:
            engine.dispose()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client had sent when the answer came

    def problem(self) -> dict[str, Any]:
        """The problem+json body without its request id, which is the answer's X-Request-Id
        (RequestLog, outside the limits, numbers every request, refused ones too)."""
        assert self.headers["content-type"] == PROBLEM, self.headers
        value: dict[str, Any] = json.loads(self.body)
        assert value.pop("request_id") == self.headers["x-request-id"]
        return value


def _connect(base: str) -> socket.socket:
    url = urlsplit(base)
    return socket.create_connection((url.hostname, url.port), timeout=30)


def _read_answer(sock: socket.socket, sent: int) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before an answer: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    while len(body) < int(headers["content-length"]):
        piece = sock.recv(65536)
        assert piece, "connection closed in the middle of the answer"
        body += piece
    return Answer(status, headers, body, sent)


def post_chunked(
    served: Served, path: str, *, total: int, headers: dict[str, str], body: bytes = b""
) -> Answer:
    """POST with ``Transfer-Encoding: chunked``: ``body`` if given, else ``total`` bytes of JSON
    whitespace in 64 KiB chunks, sent until the server answers (it may stop reading first)."""
    sock = _connect(served.base)
    with sock:
        head = f"POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
        head += "Content-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        pieces = [body] if body else [b" " * CHUNK] * (total // CHUNK)
        sent = 0
        for piece in pieces:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # answered before the body ended
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        else:
            sock.sendall(b"0\r\n\r\n")
        return _read_answer(sock, sent)


def send_raw(served: Served, request: bytes) -> Answer:
    sock = _connect(served.base)
    with sock:
        sock.sendall(request)
        return _read_answer(sock, 0)


# -- bodies ----------------------------------------------------------------------------------


def test_chunked_body_over_the_limit_to_the_unsigned_webhook_is_413_and_is_not_read(
    served: Served,
) -> None:
    """256 MiB to the webhook that takes no token: refused at the limit, never read whole (the
    probe saw the server grow to 610 MiB before answering 401)."""
    before = db_snapshot(served.engine)
    answer = post_chunked(served, "/v1/webhooks/gateway", total=256 * 1024 * 1024, headers={})
    assert answer.status == 413
    assert answer.headers["connection"] == "close"
    assert answer.problem() == {
        "type": "https://refundry.dev/problems/request.too_large",
        "title": "request too_large",
        "status": 413,
        "detail": f"the body is larger than {LIMIT} bytes",
        "code": "request.too_large",
        "field": None,
    }
    # Answered while the client was still sending: the socket buffers hold a few MiB at most.
    assert answer.sent < 32 * 1024 * 1024
    assert snapshot_diff(before, db_snapshot(served.engine)) == ""


def test_chunked_body_over_the_limit_with_an_idempotency_key_is_413_and_stores_nothing(
    served: Served,
) -> None:
    """257 KiB to POST /v1/cases with an Idempotency-Key (the probe's body was read and parsed;
    with a key, its chunks were concatenated quadratically): 413, no key kept, no case."""
    before = db_snapshot(served.engine)
    answer = post_chunked(
        served,
        "/v1/cases",
        total=257 * 1024 + CHUNK,
        headers={
            "Authorization": served.token("customer", "c-limits"),
            "Idempotency-Key": "limits-1",
        },
    )
    assert (answer.status, answer.problem()["code"]) == (413, "request.too_large")
    assert snapshot_diff(before, db_snapshot(served.engine)) == ""


def test_chunked_body_within_the_limit_reaches_the_route(served: Served) -> None:
    order = {**ex.order("o-limits-chunked", [ex.line("L1", 5000)], 5000), "customer_id": "c-lim"}
    body = json.dumps({"order": order}).encode()
    answer = post_chunked(
        served,
        "/v1/orders",
        total=len(body),
        body=body,
        headers={"Authorization": served.token("admin", "shop")},
    )
    assert answer.status == 201, answer.body
    view = json.loads(answer.body)
    assert (view["id"], view["customer_id"], [x["quantity"] for x in view["lines"]]) == (
        "o-limits-chunked",
        "c-lim",
        [1],
    )


def test_content_length_over_the_limit_is_413_before_the_body_is_sent(served: Served) -> None:
    answer = send_raw(
        served,
        b"POST /v1/webhooks/gateway HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {LIMIT + 1}\r\n\r\n".encode(),
    )
    assert (answer.status, answer.problem()["code"]) == (413, "request.too_large")


# -- headers ---------------------------------------------------------------------------------


def test_one_megabyte_header_is_431(served: Served) -> None:
    before = db_snapshot(served.engine)
    answer = send_raw(
        served,
        b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n",
    )
    assert answer.status == 431
    assert answer.problem() == {
        "type": "https://refundry.dev/problems/request.headers_too_large",
        "title": "request headers_too_large",
        "status": 431,
        "detail": f"at most {MAX_HEADERS} header fields of {MAX_HEADER_BYTES} bytes in all",
        "code": "request.headers_too_large",
        "field": None,
    }
    assert snapshot_diff(before, db_snapshot(served.engine)) == ""


def test_too_many_headers_are_431_and_headers_within_bounds_pass(served: Served) -> None:
    many = b"".join(f"X-H{i}: v\r\n".encode() for i in range(MAX_HEADERS + 1))
    answer = send_raw(served, b"GET /healthz HTTP/1.1\r\nHost: test\r\n" + many + b"\r\n")
    assert (answer.status, answer.problem()["code"]) == (431, "request.headers_too_large")
    # Host plus 98 more is 99 fields, and one 8 KiB value is within the byte bound.
    fine = b"".join(f"X-H{i}: v\r\n".encode() for i in range(MAX_HEADERS - 2))
    big = b"X-Big: " + b"a" * 8192 + b"\r\n"
    ok = send_raw(served, b"GET /healthz HTTP/1.1\r\nHost: test\r\n" + fine + big + b"\r\n")
    assert ok.status == 200, ok.body


# -- what the middlewares read -----------------------------------------------------------------


class Endless:
    """A client that never stops sending: ``chunk``-byte messages, counted."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.pulled = 0

    async def __call__(self) -> Message:
        self.pulled += 1
        return {"type": "http.request", "body": b" " * self.chunk, "more_body": True}


def _scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/v1/cases", "headers": headers}


def test_the_limit_reads_no_chunk_past_the_limit_and_never_calls_the_app() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    client = Endless(1000)
    asyncio.run(RequestLimits(app, max_body_bytes=10_000)(_scope([]), client, send))
    assert client.pulled == 11  # 11,000 bytes: the first message past 10,000
    assert called == []
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "request.too_large"


def test_idempotency_middleware_reads_many_chunks_in_linear_time() -> None:
    """40,000 chunks of 32 bytes (1.3 MB): concatenating them one by one copies ~26 GB (16 s
    here); collected in a list they take a few milliseconds."""
    chunks, size = 40_000, 32

    class Finite:
        def __init__(self) -> None:
            self.left = chunks

        async def __call__(self) -> Message:
            self.left -= 1
            return {"type": "http.request", "body": b" " * size, "more_body": self.left > 0}

    seen: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        pass

    middleware = IdempotencyMiddleware(
        app,
        engine=_NoStore(),
        subject_of=lambda headers: "customer:c-1",
        ttl=timedelta(hours=1),
        lease=timedelta(seconds=10),
    )
    middleware._start = lambda key, digests: Claim(key, "t")  # type: ignore[method-assign]
    middleware._finish = lambda claim, status, body, location: None  # type: ignore[method-assign]
    started = time.monotonic()
    asyncio.run(middleware(_scope([(b"idempotency-key", b"k-1")]), Finite(), send))
    elapsed = time.monotonic() - started
    assert [len(b) for b in seen] == [chunks * size]
    assert elapsed < 5, f"{elapsed:.1f} s to read {chunks} chunks"


class _NoStore:
    """The engine slot of a middleware whose store calls the test replaces."""
