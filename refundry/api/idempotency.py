"""``Idempotency-Key`` on every POST, as payment APIs do it.

The first request with a key runs and its response (status and body) is stored; the same key
and the same request replay it (header ``Idempotent-Replayed: true``); the same key with another
request is 422 ``idempotency.key_reused``; a key whose first request is still running is 409
``idempotency.in_flight``. Keys are scoped to the caller (role and subject) and kept at least 24
hours. Answers that depend on the moment are not stored, as Stripe does: a server error (5xx),
429 ``rate.limited`` and 409 (a conflict with the state, e.g. a case in another state or a
concurrent refund) release the key, so the same request may be retried with it and run again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import anyio.to_thread
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from refundry.api.problems import MEDIA, PROBLEM_TYPE
from refundry.services.idempotency_keys import Earlier, claim_key, finish_key

__all__ = ["IdempotencyMiddleware"]

HEADER = b"idempotency-key"


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, engine: Engine, subject_of: object, ttl: timedelta) -> None:
        self.app = app
        self.engine = engine
        self.subject_of = subject_of  # callable(headers) -> "role:subject" or None
        self.ttl = ttl

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
        digest = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body
        ).hexdigest()
        now = datetime.now(UTC)
        # The store is synchronous: keep it off the event loop.
        answer = await anyio.to_thread.run_sync(self._start, key, digest, now)
        if answer is not None:
            if answer.kind == "replay":
                await _send_raw(send, answer.status, answer.body, replayed=True)
            elif answer.kind == "reused":
                await _send_problem(
                    send,
                    422,
                    "idempotency.key_reused",
                    "this Idempotency-Key was used with another request",
                )
            else:
                await _send_problem(
                    send,
                    409,
                    "idempotency.in_flight",
                    "a request with this Idempotency-Key is still running",
                )
            return
        code = [500]
        chunks: list[bytes] = []

        async def replay_receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                code[0] = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            await anyio.to_thread.run_sync(self._finish, key, code[0], b"".join(chunks))

    def _start(self, key: str, digest: str, now: datetime) -> Earlier | None:
        return claim_key(self.engine, key=key, request_hash=digest, now=now, ttl=self.ttl)

    def _finish(self, key: str, status: int, body: bytes) -> None:
        finish_key(self.engine, key=key, status=status, body=body)


async def _send_raw(send: Send, status: int, body: bytes, *, replayed: bool) -> None:
    media = MEDIA if status >= 400 else "application/json"
    headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_problem(send: Send, status: int, code: str, detail: str) -> None:
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
    await _send_raw(send, status, body, replayed=False)
