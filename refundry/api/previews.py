"""The refund preview answered in front of the framework.

``POST /v1/orders/{id}/refund-preview`` is what a shop's page asks each time a customer
changes a quantity, and nothing of it is kept: its answer depends on the moment and on the
request. The preview service's own work (one read of the plan's inputs, the plan, its
document) was 0.2–0.35 ms of one core and the framework's around it 1–1.3 ms
(docs/benchmarks.md, "The HTTP shell"), so ``PreviewAnswers`` answers it in front of the
framework (refundry/api/shortcuts.py) with the route's own parts: the token read by
``bearer_actor`` as ``current_actor`` reads it, the order id by the path's ``Id``, the body by
``RefundRequestBody``, the plan by ``answer_preview`` (which the route answers with too), a
refusal by the app's own problem+json handler. The answer is byte for byte the route's
(tests/api/test_preview_answers.py compares the two on every outcome).

What the framework answers in its own way is left to it, the body handed on as it came:

* a body that is not exactly what the framework reads as JSON — another content type, no
  body, text ``json.loads`` refuses (422 ``request.invalid``, ``request.not_utf8``);
* an order id or a body the models refuse: the framework's 422 lists every error;
* an ``Idempotency-Key``: the idempotency layer stores the answer;
* any exception but a ``RefundryError`` (the app's 500, or its answer), and a path under a
  ``root_path``.

The refusals come in the framework's order: a body that is not JSON, then the token (401),
then the order id and the body (422), then the service's (403, 404, 422).

**Where it runs.** The token is read on the event loop, as the route's async dependency reads
it. The service (SQLAlchemy's sync engine) and the answer's serialisation run, on SQLite, on
the event loop too: a read of a local file and ~0.2 ms of plan, which a thread would not run
any sooner (one process, one GIL) and whose hop to the thread pool and back cost more CPU than
the read (the thread's wake-ups, and the GIL handed back and forth at every SQLite call:
measured in docs/benchmarks.md); the kept answers read SQLite on the loop the same way. On
PostgreSQL they run on the thread pool, one hop, under the limiter the routes share
(``request_threads``): a read there waits on a round trip to the server, which must not hold
the loop.
"""

from __future__ import annotations

import json
import re

from anyio import to_thread
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from refundry.api.deps import ApiContext, bearer_actor
from refundry.api.fields import Id
from refundry.api.problems import refundry_error
from refundry.api.routing import Answers
from refundry.api.schemas_cases import PlanView, RefundRequestBody
from refundry.api.shortcuts import NamedRoute, ShortcutLayer
from refundry.domain.errors import RefundryError
from refundry.services.access import Actor
from refundry.services.orders.views import preview_order_refund

__all__ = ["PreviewAnswers", "answer_preview"]

_PLAN = Answers(PlanView, 200)  # as OneHopRoute answers the route's model
_ORDER_ID = TypeAdapter(Id)
# The content types taken here: what the framework reads with json.loads (any charset named
# is not looked at, there as here). Any other is left to the framework.
_JSON = frozenset((b"application/json", b"application/json; charset=utf-8"))


def answer_preview(
    ctx: ApiContext, *, actor: Actor, order_id: str, body: RefundRequestBody
) -> Response:
    """The plan ``body`` would apply to ``order_id`` now, as the route answers it."""
    plan = preview_order_refund(
        ctx.engine,
        actor=actor,
        order_id=order_id,
        request=body.request_for(order_id),
        policy=ctx.desk.policy,
        now=ctx.now(),
    )
    return _PLAN.json(PlanView.model_validate(plan))


class PreviewAnswers(ShortcutLayer):
    """Answers ``POST /v1/orders/{id}/refund-preview`` as its route does, without the
    framework."""

    method = "POST"
    routes = (
        (
            NamedRoute("/v1/orders/{order_id}/refund-preview"),
            re.compile(r"/v1/orders/[^/]+/refund-preview"),
        ),
    )

    async def _answer(self, scope: Scope, route: NamedRoute, body: bytes) -> Response | None:
        authorization = content_type = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's headers read
            if name == b"authorization" and authorization is None:
                authorization = value
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"idempotency-key":
                return None
        if scope.get("root_path") or content_type is None or content_type.lower() not in _JSON:
            return None
        if not body:
            return None
        try:
            doc = json.loads(body)  # as Starlette's Request.json() reads it
        except (ValueError, RecursionError):
            return None
        request = Request(scope)
        ctx: ApiContext = scope["app"].state.ctx
        try:
            actor = bearer_actor(
                ctx, "" if authorization is None else authorization.decode("latin-1")
            )
        except RefundryError as refused:
            return await refundry_error(request, refused)
        try:
            order_id = _ORDER_ID.validate_python(scope["path"].split("/")[3])
            ask = RefundRequestBody.model_validate(doc)
        except ValidationError:
            return None  # the framework's 422, with every error listed

        def preview() -> Response:
            return answer_preview(ctx, actor=actor, order_id=order_id, body=ask)

        try:
            if ctx.engine.dialect.name == "sqlite":
                return preview()  # on the loop (the module's docstring: where it runs)
            return await to_thread.run_sync(preview)
        except RefundryError as refused:
            return await refundry_error(request, refused)
