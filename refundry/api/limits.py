"""Request limits that hold however a request arrives: headers bounded, bodies counted.

``RequestLimits`` is the outermost middleware, so it runs before authentication, the
idempotency middleware and any route:

* headers: more than ``MAX_HEADERS`` fields, or more than ``MAX_HEADER_BYTES`` of names and
  values together, is 431 ``request.headers_too_large`` (uvicorn's httptools parser sets no
  bound of its own, so a 1 MB header would otherwise reach the app);
* bodies: a ``Content-Length`` over the limit is 413 ``request.too_large`` at once, unread; any
  other body (chunked transfer coding has no length) is counted as ``receive()`` delivers it
  and refused with the same 413 at the first chunk past the limit. What was read is at most
  one chunk past the limit, and the rest is never read: the answer says ``Connection: close``.

The paths in ``uploads`` (POSTs that carry photos: the API's photo upload, the request form's
"check your answers" step, the merchant's inspection) take up to ``max_upload_bytes``: every
photo a case may take at the largest size, plus the limit for the rest of the form.

A body within the limit is read whole here and handed to the app as one message: every body
this API takes is a JSON document under the limit that the route would read whole anyway, and
reading it first is what puts the limit before any authentication or idempotency work.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from refundry.api.problems import problem, status_for
from refundry.domain.errors import RefundryError

__all__ = ["MAX_HEADERS", "MAX_HEADER_BYTES", "RequestLimits", "replay_body"]

# As Node.js and h11 do by default: far above what a browser or the shop's back end sends (a
# bearer token is ~200 bytes), far below what would cost the server memory per connection.
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100


class RequestLimits:
    """Refuses oversized headers (431) and bodies (413) before the app does any work."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_headers: int = MAX_HEADERS,
        uploads: tuple[re.Pattern[str], ...] = (),
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.uploads = uploads
        self.max_upload_bytes = max(max_upload_bytes, max_body_bytes)
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        size = sum(len(name) + len(value) for name, value in headers)
        if len(headers) > self.max_headers or size > self.max_header_bytes:
            refusal = _refusal(
                "request.headers_too_large",
                f"at most {self.max_headers} header fields of {self.max_header_bytes} bytes in all",
            )
            await refusal(scope, receive, send)
            return
        limit = self.max_body_bytes
        if scope["method"] == "POST" and any(p.fullmatch(scope["path"]) for p in self.uploads):
            limit = self.max_upload_bytes  # a form that carries photos
        length = dict(headers).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            body += message.get("body", b"")
            if len(body) > limit:
                await self._too_large(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"the body is larger than {limit} bytes"
        await _refusal("request.too_large", detail)(scope, receive, send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the server's own messages (``http.disconnect``): for
    the app after a layer that read the body (this one, refundry/api/shortcuts.py)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _refusal(code: str, detail: str) -> ASGIApp:
    # The rest of the body is never read, so the connection cannot carry another request.
    error = RefundryError(detail, code=code)
    return problem(status_for(error), code, detail, headers={"Connection": "close"})
