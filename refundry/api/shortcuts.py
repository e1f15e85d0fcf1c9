"""Answers given in front of the framework: the routes asked most, answered without FastAPI.

FastAPI costs a request about a millisecond of one core around its endpoint
(docs/benchmarks.md, "The HTTP shell"): some fifty route patterns tried, the dependencies
solved, the thread pool's hop, the body validated, the answer serialised. For the few routes
asked far more often than the rest, a layer in front of the app answers the request itself,
byte for byte as the route answers it, and hands everything it is not sure of to the app
unchanged — its body, which the layer has read, handed on as it came. A failure of the
shortcut is logged and the app answers instead: a shortcut never answers what the route
would not.

Two kinds stand on ``ShortcutLayer``:

* kept answers (refundry/api/kept.py, refundry/web/kept_pages.py): ``GET /v1/orders/{id}`` and
  the order page, answered from memory while the customer's data has not moved;
* previews (refundry/api/previews.py): the refund preview, computed as its route computes it,
  without the framework's layers around it.

The request log and the metrics name an answer given here by its route's template
(``NamedRoute``, put in the scope where the router puts its route), so its line, latency and
count are the route's. Where each layer stands among the app's middleware is app.py's: the
kept ones just inside the request log, the preview inside the limits (its body is counted
first) and outside the idempotency layer (a request with a key is left to it).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from refundry.api.limits import replay_body

__all__ = ["NamedRoute", "ShortcutLayer"]

log = structlog.get_logger("refundry.shortcuts")


@dataclass(frozen=True, slots=True)
class NamedRoute:
    """What the request log and the metrics name an answer by (its route's template)."""

    path: str


class ShortcutLayer(ABC):
    """In front of the framework: a request with ``method`` to one of ``routes`` may be
    answered by ``_answer``; every other request, and any failure of the shortcut, goes on to
    the app, with the body the layer read."""

    method: str
    routes: tuple[tuple[NamedRoute, re.Pattern[str]], ...]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @abstractmethod
    async def _answer(self, scope: Scope, route: NamedRoute, body: bytes) -> Response | None:
        """The route's answer to this request (``body``: empty for a GET, not read), or None:
        the app answers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == self.method:
            path = scope["path"]
            route = next((r for r, pattern in self.routes if pattern.fullmatch(path)), None)
            if route is not None:
                body = b""
                if self.method != "GET":
                    chunks = []
                    while True:
                        message = await receive()
                        if message["type"] != "http.request":
                            return  # the client went away: nobody to answer
                        chunks.append(message.get("body", b""))
                        if not message.get("more_body", False):
                            break
                    body = b"".join(chunks)
                    receive = replay_body(body, receive)
                try:
                    answer = await self._answer(scope, route, body)
                except Exception:  # only a shortcut: the route answers instead
                    log.warning("shortcut.failed", layer=type(self).__name__, exc_info=True)
                    answer = None
                if answer is not None:
                    scope["route"] = route
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)
