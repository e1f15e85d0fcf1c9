"""Every HTTP request gets an id, one structured log line and its latency and status counted.

Outermost middleware: the id (``refundry.observability``) is bound before anything else runs,
so the body limit's 413, the idempotency layer and every route log and answer with it; the
``X-Request-Id`` header is added to every answer, the 500s of ``problems.server_error``
included (which set it themselves: they are written outside this middleware).
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from refundry.observability import REQUEST_ID_HEADER, new_request_id, request_id_var

__all__ = ["HTTP_LATENCY", "HTTP_REQUESTS", "RequestLog", "request_id_of"]

log = structlog.get_logger("refundry.http")

HTTP_LATENCY = Histogram(
    "refundry_http_request_duration_seconds",
    "Time from a request's arrival to its answer, by route template and method.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
HTTP_REQUESTS = Counter(
    "refundry_http_requests",
    "Requests answered, by route template, method and status.",
    ["method", "route", "status"],
)
_HEADER = REQUEST_ID_HEADER.lower().encode()


def request_id_of(scope: Scope) -> str:
    """The request's id, chosen once per request and kept in its scope: the caller's sane
    ``X-Request-Id``, else a new one (the tracing span asks first, tracing.py)."""
    state = scope.setdefault("state", {})
    request_id = state.get("request_id")
    if request_id is None:
        given = dict(scope["headers"]).get(_HEADER)
        request_id = new_request_id(given.decode("latin-1") if given else None)
        state["request_id"] = request_id
    return str(request_id)


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # each (method, route)'s latency histogram and (… , status)'s counter, found once
        self._latency: dict[tuple[str, str], Any] = {}
        self._answered: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        request_id_var.set(request_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != _HEADER]
                headers.append((_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            timed = self._latency.get((method, route))
            if timed is None:
                timed = self._latency[(method, route)] = HTTP_LATENCY.labels(method, route)
            timed.observe(elapsed)
            counted = self._answered.get((method, route, str(status)))
            if counted is None:
                counted = HTTP_REQUESTS.labels(method, route, str(status))
                self._answered[(method, route, str(status))] = counted
            counted.inc()
            log.info(
                "http.request",
                method=method,
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
