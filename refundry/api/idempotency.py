"""``Idempotency-Key`` on every POST, as payment APIs do it.

The first request with a key runs and its response (status and body) is stored before it is
sent; the same key and the same request replay it (header ``Idempotent-Replayed: true``); the
same key with another request is 422 ``idempotency.key_reused``; a replayed answer carries
the first answer's ``Location`` (a 201's) too; a key whose first request is
still running is 409 ``idempotency.in_flight`` with ``Retry-After``. "The same request" is the
method, the path, the query and the body parsed as JSON and written canonically (keys sorted,
no spacing), so the same document with its keys in another order is the same request. Keys
are scoped to the caller (role and subject) and kept ``idempotency_ttl_hours``. Answers that
depend on the moment are not stored, as Stripe does: a server error (5xx), 429
``rate.limited`` and 409 (a conflict with the state, e.g. a case in another state or a
concurrent refund) release the key, so the same request may be retried with it and run again.

A request that dies (its process killed) leaves its key held for ``idempotency_lease_seconds``
only (services/idempotency_keys.py, services/claims.py). The use case marks the key committed in
its own transaction, so a retry after the lease knows which happened: nothing committed — the
request runs again; committed — the answer is rebuilt from what was committed (for a case: the
case as the caller sees it now, with the first request's status), stored and replayed; a POST
without such a rebuild (ingest an order, suspend, revoke a token, mark a message read, request
a one-time code) runs again, each being idempotent by nature (the same order again is 200, an
existing suspension 200, …; a one-time code is sent anew).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from refundry.api.problems import MEDIA, PROBLEM_TYPE
from refundry.api.schemas_cases import problems
from refundry.services.claims import CURRENT, Claim
from refundry.services.faults import fault_point
from refundry.services.idempotency_keys import (
    Earlier,
    claim_key,
    finish_key,
    store_rebuilt,
    take_over,
)

__all__ = ["IdempotencyMiddleware", "document_idempotency", "fingerprints", "rebuild_target"]

HEADER = b"idempotency-key"

# POSTs whose lost answer is rebuilt by reading what they changed, as the caller (a case's
# answer is the case as the caller sees it: routes/cases.py), with the first answer's status.
_CASE_ACTION = re.compile(
    r"^/v1/cases/(?P<id>[^/]+)/(approve|reject|cancel|ship|receive|inspect|resolve|rate"
    r"|escalate|note|claim|assign|retry-refund|refund-to-wallet|recover-debt|write-off-debt)$"
)


def rebuild_target(path: str, outcome: str | None) -> tuple[str, int] | None:
    """The GET that rebuilds the answer of the committed POST to ``path`` (and its status), or
    None: the POST runs again. A rebuilt 201 carries the GET's path as its Location."""
    if path == "/v1/cases":
        return (f"/v1/cases/{outcome}", 201) if outcome else None
    found = _CASE_ACTION.match(path)
    if found:
        return f"/v1/cases/{found['id']}", 200
    return None


def fingerprints(method: str, path: str, query: bytes, body: bytes) -> tuple[str, str]:
    """The request's digest over its canonical body, then the digest keys stored before it
    (over the raw bytes, no query) were made with."""
    try:
        doc = json.loads(body)
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON (or not UTF-8): the bytes as they came
        canonical = body
    head = f"{method} {path}?".encode() + query + b"\n"
    legacy = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body)
    return "c1:" + hashlib.sha256(head + canonical).hexdigest(), legacy.hexdigest()


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        engine: Engine,
        subject_of: object,
        ttl: timedelta,
        lease: timedelta,
    ) -> None:
        self.app = app
        self.engine = engine
        self.subject_of = subject_of  # callable(headers) -> "role:subject" or None
        self.ttl = ttl
        self.lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_key = headers.get(HEADER)
        if not raw_key:
            await self.app(scope, receive, send)
            return
        if len(raw_key) > 200:
            await _send_problem(
                send, 422, "idempotency.key_invalid", "Idempotency-Key is at most 200 characters"
            )
            return
        subject = self.subject_of(headers)  # type: ignore[operator]
        if subject is None:
            await self.app(scope, receive, send)  # unauthenticated: the route answers 401
            return
        # Joined once at the end: adding each chunk to the body so far copies it every time,
        # quadratic in the number of chunks (RequestLimits bounds the total before this runs).
        parts: list[bytes] = []
        more = True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(parts)
        # The subject's length first: a subject may hold ':' (customer "a:b" with key "x" and
        # customer "a" with key "b:x" must not share a stored answer).
        key = f"{len(subject)}:{subject}:{raw_key.decode('latin-1')}"
        digests = fingerprints(scope["method"], scope["path"], scope.get("query_string", b""), body)
        # The store is synchronous: keep it off the event loop.
        found: Claim | Earlier | None = await anyio.to_thread.run_sync(self._start, key, digests)
        if isinstance(found, Earlier) and found.kind == "committed":
            target = rebuild_target(scope["path"], found.outcome)
            if target is not None:
                await self._rebuild(scope, send, key, found.token, target)
                return
            found = await anyio.to_thread.run_sync(self._take_over, key, found.token)
        if isinstance(found, Claim):
            await self._run(scope, send, found, body)
        elif found is None or found.kind == "in_flight":
            await _send_problem(
                send,
                409,
                "idempotency.in_flight",
                "a request with this Idempotency-Key is still running",
                retry_after=int(self.lease.total_seconds()),
            )
        elif found.kind == "replay":
            extra = [(b"location", found.location.encode())] if found.location else []
            await _send_raw(send, found.status, found.body, replayed=True, extra=extra)
        else:
            await _send_problem(
                send,
                422,
                "idempotency.key_reused",
                "this Idempotency-Key was used with another request",
            )

    async def _run(self, scope: Scope, send: Send, claim: Claim, body: bytes) -> None:
        """Run the request under ``claim``; store its answer, then send it."""
        start: list[Message] = []
        chunks: list[bytes] = []

        async def replay_receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.append(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        status, answer, location = 500, b"", None
        reset = CURRENT.set(claim)
        try:
            await self.app(scope, replay_receive, capture)
            status, answer = (int(start[0]["status"]) if start else 500), b"".join(chunks)
            location = _location(start[0]) if start else None
        finally:
            CURRENT.reset(reset)
            await anyio.to_thread.run_sync(self._finish, claim, status, answer, location)
        fault_point("request.after_answer")
        for message in start:
            await send(message)
        await send({"type": "http.response.body", "body": answer})

    async def _rebuild(
        self, scope: Scope, send: Send, key: str, token: str, target: tuple[str, int]
    ) -> None:
        """Answer a committed request whose answer was lost by reading what it changed."""
        path, status = target
        dropped = {HEADER, b"content-length", b"content-type"}
        read: dict[str, Any] = {
            **scope,
            "method": "GET",
            "path": path,
            "raw_path": quote(path).encode(),
            "query_string": b"",
            "headers": [h for h in scope["headers"] if h[0] not in dropped],
        }
        got: list[int] = []
        chunks: list[bytes] = []

        async def nothing() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                got.append(int(message["status"]))
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.app(read, nothing, capture)
        answer = b"".join(chunks)
        if got and got[0] == 200:
            location = path if status == 201 else None
            await anyio.to_thread.run_sync(
                self._store_rebuilt, key, token, status, answer, location
            )
            extra = [(b"location", location.encode())] if location else []
            await _send_raw(send, status, answer, replayed=True, extra=extra)
        else:  # the caller may no longer see it: say so, store nothing
            await _send_raw(send, got[0] if got else 500, answer, replayed=False)

    def _start(self, key: str, digests: tuple[str, str]) -> Claim | Earlier:
        now = datetime.now(UTC)
        return claim_key(
            self.engine, key=key, request_hash=digests, now=now, ttl=self.ttl, lease=self.lease
        )

    def _take_over(self, key: str, token: str) -> Claim | None:
        now = datetime.now(UTC)
        return take_over(self.engine, key=key, token=token or None, now=now, lease=self.lease)

    def _finish(self, claim: Claim, status: int, body: bytes, location: str | None) -> None:
        finish_key(self.engine, claim=claim, status=status, body=body, location=location)

    def _store_rebuilt(
        self, key: str, token: str, status: int, body: bytes, location: str | None
    ) -> None:
        store_rebuilt(
            self.engine, key=key, token=token, status=status, body=body, location=location
        )


def _location(start: Message) -> str | None:
    """The Location header of a response's start message, if it has one."""
    for name, value in start.get("headers", ()):
        if bytes(name).lower() == b"location":
            return bytes(value).decode("latin-1")
    return None


async def _send_raw(
    send: Send,
    status: int,
    body: bytes,
    *,
    replayed: bool,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    media = MEDIA if status >= 400 else "application/json"
    headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    headers.extend(extra or ())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_problem(
    send: Send, status: int, code: str, detail: str, *, retry_after: int | None = None
) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_TYPE + code,
            "title": code.replace(".", " "),
            "status": status,
            "detail": detail,
            "code": code,
            "field": "Idempotency-Key",
        }
    ).encode()
    extra = [] if retry_after is None else [(b"retry-after", str(retry_after).encode())]
    await _send_raw(send, status, body, replayed=False, extra=extra)


IN_FLIGHT = (
    "a request with this Idempotency-Key is still running (idempotency.in_flight, see "
    "Retry-After), or ran past its lease and was taken over (idempotency.lease_lost)"
)


def document_idempotency(doc: dict[str, Any]) -> dict[str, Any]:
    """Every POST of the OpenAPI document ``doc`` takes the ``Idempotency-Key`` header and may
    answer 409 for it (and 422 for a reused or invalid key): said on each operation."""
    content = problems(409)[409]["content"]
    for item in doc.get("paths", {}).values():
        op = item.get("post")
        if op is None:
            continue
        params = op.setdefault("parameters", [])
        if not any(p.get("name") == "Idempotency-Key" for p in params):
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "replays the first answer to the same request "
                    "(docs/api.md); at most 200 characters",
                    "schema": {"type": "string", "maxLength": 200},
                }
            )
        responses = op.setdefault("responses", {})
        for status, what in (
            ("409", IN_FLIGHT),
            ("422", "idempotency.key_reused, idempotency.key_invalid (and the request's own)"),
        ):
            responses.setdefault(
                status,
                {"description": what, "content": content},
            )
    return doc
