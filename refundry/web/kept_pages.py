"""Pages kept while the customer's data has not moved: the order page answered from memory.

A customer's order page costs a few milliseconds of one core to draw (seven reads and a
template) and is asked for far more often than the order changes. So the route keeps what it
drew with the version of the customer's data it read (services/customers/version.py: the
length of the customer's audit chain, grown by every write on the customer in the same
transaction) and, in front of the framework (``KeptPageAnswers``, just inside the request
log), the next request for the same page is answered from memory when the version is still
the same: one indexed read instead of the reads, the template and the framework's layers.
A version that moved, an unknown page, anything unexpected: the request goes on to the route,
which draws the page again and keeps the new one.

**What a kept page is for.** The key is (path, role, subject, locale). An entry is made only
by the route, after its access check, for a page it answered 200; a request is answered from
it only with a valid session (the same check as every page: signature, expiry, revocation)
whose role and subject are the key's. Customer B's session never finds A's page.

**What is not kept.** The forms' CSRF token is per browser: the page is kept with a marker in
its place (a random string drawn at start, so no text on the page can forge it) and each
answer writes the request's own token there, setting the nonce cookie when there is none, as
a drawn page does. The headers are the drawn page's (CSP, no-store…).

**Costs and limits.** Entries (refundry/api/kept.py's store, shared with the API's kept
orders) are dropped oldest-first past ``page_cache_entries`` (setting; 0 turns keeping off).
Each serving process keeps its own; the version read makes them right
across processes and the worker. The version read runs on the event loop rather than paying
the thread pool's hop: on SQLite a primary-key read of a local file (tens of microseconds), on
PostgreSQL awaited over the loop's own autocommit connections (refundry/store/loop_reads.py),
one round trip during which the loop serves other requests. bench/pages_bench.py measures the
whole.
"""

from __future__ import annotations

import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from refundry.api.deps import ApiContext, context
from refundry.api.kept import Kept, KeptAnswerLayer, Key
from refundry.api.shortcuts import NamedRoute
from refundry.services.access import Actor
from refundry.web.session import SESSION_COOKIE, cookie_actor, csrf_token
from refundry.web.templating import locale_of, page_response, render_text

__all__ = ["KeptPageAnswers", "draw_and_keep"]

# Where the form token goes in a kept page: drawn once per process, never shown to anyone.
_MARKER = "rfcsrf" + secrets.token_hex(16)

# The pages that are kept: their route, and the paths it answers.
KEPT_ROUTES: tuple[tuple[NamedRoute, re.Pattern[str]], ...] = (
    (NamedRoute("/orders/{order_id}"), re.compile(r"/orders/[^/]+")),
)


def _key(request: Request, actor: Actor) -> Key:
    return (request.scope["path"], actor.role, actor.id, locale_of(request))


def draw_and_keep(
    request: Request, template: str, *, actor: Actor, version: int, **values: object
) -> Response:
    """Draw ``template`` for ``actor`` (as ``render`` does) and keep it at ``version`` — the
    customer's data version read *before* the page's reads, so a change committed meanwhile
    makes the kept page older than the store and the next request draws it again."""
    ctx = context(request)
    body = render_text(request, template, actor=actor, csrf=_MARKER, **values)
    ctx.kept.keep(_key(request, actor), Kept(actor.id, version, tuple(body.split(_MARKER))))
    return page_response(request, body.replace(_MARKER, csrf_token(ctx, request)))


class KeptPageAnswers(KeptAnswerLayer):
    """Answers a kept page's request from memory when the customer's data has not moved
    since it was drawn."""

    routes = KEPT_ROUTES

    def _key(self, ctx: ApiContext, request: Request) -> Key | None:
        token = request.cookies.get(SESSION_COOKIE)
        actor = cookie_actor(ctx, token) if token else None
        if actor is None or actor.role != "customer":
            return None
        return _key(request, actor)

    def _respond(self, ctx: ApiContext, request: Request, kept: Kept) -> Response:
        return page_response(request, csrf_token(ctx, request).join(kept.parts))
