"""Answers kept while a customer's data has not moved: an order answered from memory.

An order (``GET /v1/orders/{id}``, and the customer's order page, refundry/web/kept_pages.py)
costs a few milliseconds of one core to read and serialise — seven reads, the view, the JSON —
and is asked for far more often than it changes. So its route keeps what it answered with the
version of the order's customer's data read *before* its reads (services/customers/version.py:
the length of the customer's audit chain, grown by every committed write on the customer in
the same transaction: an ingest, a status update, a case's acts, a refund and each gateway
answer). In front of the framework, the next request for the same thing by the same actor is
answered from memory when that version has not moved: one indexed read instead of the reads,
the view, the serialisation and the framework's layers. A version that moved, an unknown
entry, any doubt: the request goes on to the route, which answers afresh and keeps the new one.

**Whose entry.** The key is (path, role, subject, locale): an entry is made only by the route,
after its access check, for an answer it gave 200; a request is answered from it only when its
credentials are valid (the same check as the route's: signature, expiry, revocation) and name
the key's role and subject. Customer B's token never finds A's order; a merchant's redacted
view is the merchant's own entry.

**Costs and limits.** Entries (and the order → customer pairs, which never change) are dropped
oldest first past ``page_cache_entries`` (setting; 0 turns keeping off). Each serving process
keeps its own; the version read makes them right across processes and the worker. The read
runs on the event loop, not the thread pool: on SQLite a primary-key read of a local file, on
PostgreSQL awaited over refundry/store/loop_reads.py. bench/http_bench.py measures the whole.
"""

from __future__ import annotations

import re
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from refundry.api.deps import ApiContext, bearer_actor, context
from refundry.api.shortcuts import NamedRoute, ShortcutLayer
from refundry.domain.errors import RefundryError
from refundry.services.access import Actor
from refundry.services.customers.version import data_version, data_version_on_loop

__all__ = [
    "Kept",
    "KeptAnswerLayer",
    "KeptAnswers",
    "KeptOrderAnswers",
    "answer_order",
]


Key = tuple[str, str, str, str]  # path, role, subject, locale ("" for the API)


@dataclass(frozen=True, slots=True)
class Kept:
    customer_id: str  # whose data version the entry was made at
    version: int
    parts: tuple[str, ...]  # the body; a page's split where its per-browser form token goes


class KeptAnswers:
    """The kept answers of one serving process, oldest dropped first past ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[Key, Kept] = OrderedDict()
        self._customers: OrderedDict[str, str] = OrderedDict()  # order id -> its customer
        self._lock = threading.Lock()

    def _put(self, into: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            into[key] = value
            into.move_to_end(key)
            while len(into) > self.capacity:
                into.popitem(last=False)

    def keep(self, key: Key, entry: Kept) -> None:
        self._put(self._kept, key, entry)

    def find(self, key: Key) -> Kept | None:
        with self._lock:
            return self._kept.get(key)

    def learn_customer(self, order_id: str, customer_id: str) -> None:
        """``order_id`` belongs to ``customer_id`` (an order never changes hands)."""
        self._put(self._customers, order_id, customer_id)

    def customer_of(self, order_id: str) -> str | None:
        with self._lock:
            return self._customers.get(order_id)

    def __len__(self) -> int:
        return len(self._kept)


JSON = "application/json"


def _key(path: str, actor: Actor) -> Key:
    return (path, actor.role, actor.id, "")


def answer_order(
    ctx: ApiContext, path: str, actor: Actor, order_id: str, draw: Callable[[], tuple[str, str]]
) -> Response:
    """The route's answer to ``GET /v1/orders/{id}``, kept for the next request: ``draw()``
    reads the view (access checked) and returns (its customer, its JSON). The version is read
    before it, so a write committed meanwhile makes the entry older than the store and the
    next request draws again. The first request for an order only learns its customer."""
    customer = ctx.kept.customer_of(order_id)
    if customer is None:
        owner, body = draw()
        ctx.kept.learn_customer(order_id, owner)
    else:
        version = data_version(ctx.engine, customer)
        owner, body = draw()
        if owner == customer:  # (always: an order never changes hands)
            ctx.kept.keep(_key(path, actor), Kept(customer, version, (body,)))
    return Response(body, media_type=JSON)


class KeptAnswerLayer(ShortcutLayer):
    """In front of the framework (refundry/api/shortcuts.py): a GET of one of ``routes`` whose
    actor has a kept answer made at the customer's current data version is answered from
    memory; every other request, and any failure of the shortcut, goes on to the app."""

    method = "GET"

    @abstractmethod
    def _key(self, ctx: ApiContext, request: Request) -> Key | None:
        """The kept answer's key for this request, None when its credentials name no actor
        that may be answered from memory (the route answers, or refuses)."""

    @abstractmethod
    def _respond(self, ctx: ApiContext, request: Request, kept: Kept) -> Response:
        """The kept answer, as the route answers it."""

    async def _answer(self, scope: Scope, route: NamedRoute, body: bytes) -> Response | None:
        request = Request(scope)
        ctx = context(request)
        if ctx.kept.capacity <= 0:
            return None
        key = self._key(ctx, request)
        kept = None if key is None else ctx.kept.find(key)
        if kept is None:
            return None
        reads = ctx.runtime.loop_reads
        if kept.version != await data_version_on_loop(ctx.engine, reads, kept.customer_id):
            return None
        return self._respond(ctx, request, kept)


class KeptOrderAnswers(KeptAnswerLayer):
    """Answers ``GET /v1/orders/{id}`` from memory when the actor's kept answer is still the
    order as it is."""

    routes = ((NamedRoute("/v1/orders/{order_id}"), re.compile(r"/v1/orders/[^/]+")),)

    def _key(self, ctx: ApiContext, request: Request) -> Key | None:
        try:
            actor = bearer_actor(ctx, request.headers.get("authorization", ""))
        except RefundryError:  # the route answers the refusal
            return None
        return _key(request.scope["path"], actor)

    def _respond(self, ctx: ApiContext, request: Request, kept: Kept) -> Response:
        return Response(kept.parts[0], media_type=JSON)
