"""The refund preview answered in front of the framework (refundry/api/previews.py), on SQLite
and PostgreSQL: every answer byte for byte what the framework's route answers — the plan, each
refusal, a request it leaves to the framework — and the request taken by the shortcut unless
it is one of those it leaves (a recorder innermost, just outside the router, counts what
reaches the framework)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from refundry.api.app import create_app
from refundry.api.auth import issue_token, token_claims
from refundry.api.previews import PreviewAnswers
from refundry.api.request_log import HTTP_REQUESTS
from refundry.services.tokens import revoke_token
from tests.api.conftest import (
    ADMIN,
    AGENT,
    ALICE,
    ALICE_MIXED,
    ALICE_REFUNDED,
    BOB,
    LINE_ALICE_M1,
    LINE_ALICE_REFUNDED,
    M1,
    NOW,
    SECRET,
    World,
    bearer,
    order_doc,
    problem_of,
)

ROUTE = "/v1/orders/{order_id}/refund-preview"
ASK = {"lines": [{"line_id": LINE_ALICE_M1, "quantity": 1}], "reason": "quality_issue"}
AS_AGENT = bearer("agent", AGENT)


class Reached:
    """Innermost: records each request that reaches the framework's router, and the name of
    the route the router found for it."""

    def __init__(self, app: ASGIApp, *, seen: list[str], routed: list[str]) -> None:
        self.app = app
        self.seen = seen
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.routed.append(getattr(scope.get("route"), "name", ""))


@dataclass
class Pair:
    """Two apps on the world's database: ``fast`` as create_app builds it, ``framework``
    without the preview's shortcut; what reached each one's router."""

    fast: TestClient
    framework: TestClient
    reached: list[str] = field(default_factory=list)
    reached_framework: list[str] = field(default_factory=list)
    routed_framework: list[str] = field(default_factory=list)


def _app(world: World, *, shortcut: bool, seen: list[str], routed: list[str]) -> FastAPI:
    settings = world.app.state.ctx.settings
    app = create_app(settings, clock=lambda: NOW)
    if not shortcut:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not PreviewAnswers]
    app.user_middleware.append(Middleware(Reached, seen=seen, routed=routed))  # innermost
    return app


@pytest.fixture()
def pair(world: World) -> Iterator[Pair]:
    reached: list[str] = []
    reached_framework: list[str] = []
    routed_framework: list[str] = []
    fast = _app(world, shortcut=True, seen=reached, routed=[])
    framework = _app(world, shortcut=False, seen=reached_framework, routed=routed_framework)
    try:
        with (
            TestClient(fast, follow_redirects=False) as a,
            TestClient(framework, follow_redirects=False) as b,
        ):
            yield Pair(a, b, reached, reached_framework, routed_framework)
    finally:
        fast.state.ctx.engine.dispose()
        framework.state.ctx.engine.dispose()


def _path(order_id: str) -> str:
    return f"/v1/orders/{order_id}/refund-preview"


def _both(
    pair: Pair,
    path: str,
    *,
    headers: dict[str, str],
    body: bytes | None = None,
    content_type: str | None = "application/json",
    reaches: bool,
) -> Any:
    """``path`` posted to both apps with the same request id: their answers must be the same
    bytes with the same headers, and the fast app's router ``reaches`` the request or not."""
    sent = {"X-Request-Id": "preview-test-1", **headers}
    if content_type is not None:
        sent["Content-Type"] = content_type
    raw = json.dumps(ASK).encode() if body is None else body
    before = len(pair.reached)
    fast = pair.fast.post(path, headers=sent, content=raw)
    framework = pair.framework.post(path, headers=sent, content=raw)
    assert (fast.status_code, fast.content) == (framework.status_code, framework.content)
    assert fast.headers.multi_items() == framework.headers.multi_items()
    assert pair.reached[before:] == ([f"POST {unquote(path)}"] if reaches else [])
    return fast


def test_the_plan_is_answered_before_the_framework_as_the_framework_answers_it(
    pair: Pair,
) -> None:
    answer = _both(pair, _path(ALICE_MIXED), headers=AS_AGENT, reaches=False)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"] == "preview-test-1"
    plan = answer.json()
    assert plan["order_id"] == ALICE_MIXED and plan["status"] == "ready"
    assert [u["line_id"] for u in plan["units"]] == [LINE_ALICE_M1]
    assert pair.reached_framework == [f"POST {_path(ALICE_MIXED)}"]  # the other app's router


def test_each_actor_who_may_preview_is_answered_by_the_shortcut(pair: Pair) -> None:
    for headers in (bearer("customer", ALICE), bearer("admin", ADMIN), AS_AGENT):
        assert _both(pair, _path(ALICE_MIXED), headers=headers, reaches=False).status_code == 200
    refund_only = json.dumps({**ASK, "kind": "refund_only", "order_id": ALICE_MIXED}).encode()
    answer = _both(pair, _path(ALICE_MIXED), headers=AS_AGENT, body=refund_only, reaches=False)
    assert answer.json()["request"]["kind"] == "refund_only"


def test_a_charset_on_the_json_media_type_is_the_same_plan(pair: Pair) -> None:
    answer = _both(
        pair,
        _path(ALICE_MIXED),
        headers=AS_AGENT,
        content_type="application/json; charset=utf-8",
        reaches=False,
    )
    assert answer.status_code == 200


def test_tokens_refused_are_the_same_401(pair: Pair) -> None:
    token = issue_token(SECRET, role="agent", subject=AGENT, now=NOW)
    forged = issue_token(b"x" * 32, role="agent", subject=AGENT, now=NOW)
    expired = issue_token(SECRET, role="agent", subject=AGENT, now=NOW - timedelta(days=40))
    cases = [
        ({}, "auth.unauthorized"),
        ({"Authorization": f"Basic {token}"}, "auth.unauthorized"),
        ({"Authorization": "Bearer "}, "auth.unauthorized"),
        ({"Authorization": "Bearer rf1.not-a-token"}, "auth.unauthorized"),
        ({"Authorization": f"Bearer {forged}"}, "auth.unauthorized"),
        ({"Authorization": f"Bearer {expired}"}, "auth.token_expired"),
    ]
    for headers, code in cases:
        answer = _both(pair, _path(ALICE_MIXED), headers=headers, reaches=False)
        problem_of(answer, 401, code)
    # a token refused with a body the route would also refuse: the token is checked first
    answer = _both(pair, _path(ALICE_MIXED), headers={}, body=b'{"lines": []}', reaches=False)
    problem_of(answer, 401, "auth.unauthorized")


def test_a_revoked_token_is_the_same_401(pair: Pair, world: World) -> None:
    token = issue_token(SECRET, role="agent", subject=AGENT, now=NOW)
    headers = {"Authorization": f"Bearer {token}"}
    assert _both(pair, _path(ALICE_MIXED), headers=headers, reaches=False).status_code == 200
    ctx = world.app.state.ctx
    claims = token_claims(ctx.settings.token_secrets(), token, current=ctx.settings.token_key_id)
    revoke_token(
        world.engine,
        jti=str(claims["jti"]),
        subject=AGENT,
        expires_at=NOW + timedelta(days=1),
        actor=f"admin:{ADMIN}",
        reason="laptop stolen",
        now=NOW,
    )
    for client in (pair.fast, pair.framework):  # each app reads the revocations again now
        app = client.app
        assert isinstance(app, FastAPI)
        app.state.ctx.revocations.forget()
    answer = _both(pair, _path(ALICE_MIXED), headers=headers, reaches=False)
    problem_of(answer, 401, "auth.token_revoked")


def test_refusals_of_the_service_are_the_same_problems(pair: Pair) -> None:
    path = _path(ALICE_MIXED)
    # a customer previewing another's order is told there is no such order
    problem_of(
        _both(pair, path, headers=bearer("customer", BOB), reaches=False), 404, "order.not_found"
    )
    # a merchant may not preview
    problem_of(
        _both(pair, path, headers=bearer("merchant", M1), reaches=False), 403, "auth.forbidden"
    )
    unknown = _both(pair, _path("ord-nobody"), headers=AS_AGENT, reaches=False)
    problem_of(unknown, 404, "order.not_found")
    spaced = _both(pair, _path("ord%20nobody"), headers=AS_AGENT, reaches=False)
    problem_of(spaced, 404, "order.not_found")
    other = json.dumps({**ASK, "order_id": "ord-other"}).encode()
    mismatch = _both(pair, path, headers=AS_AGENT, body=other, reaches=False)
    problem_of(mismatch, 422, "request.order_mismatch", "order_id")
    too_many = json.dumps({**ASK, "lines": [{"line_id": LINE_ALICE_M1, "quantity": 9}]})
    refused = _both(pair, path, headers=AS_AGENT, body=too_many.encode(), reaches=False)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    unknown_line = json.dumps({**ASK, "lines": [{"line_id": "ln-nowhere", "quantity": 1}]})
    refused = _both(pair, path, headers=AS_AGENT, body=unknown_line.encode(), reaches=False)
    assert refused.status_code == 422
    assert refused.json()["request_id"] == "preview-test-1"


def test_bodies_the_framework_refuses_are_left_to_it(pair: Pair) -> None:
    path = _path(ALICE_MIXED)
    bodies: list[tuple[bytes, str]] = [
        (b'{"lines": [', "request.invalid"),  # not JSON
        (b"", "request.invalid"),  # no body
        (b"[]", "request.invalid"),
        (b'{"reason": "quality_issue"}', "request.invalid"),  # no lines
        (b'{"lines": [], "reason": "quality_issue"}', "request.invalid"),
        (json.dumps({**ASK, "extra": 1}).encode(), "request.unknown_field"),
        (json.dumps({**ASK, "reason": "bored"}).encode(), "request.invalid"),
        (
            json.dumps({**ASK, "lines": [{"line_id": LINE_ALICE_M1, "quantity": "1"}]}).encode(),
            "request.invalid",
        ),
        (
            json.dumps({**ASK, "lines": [{"line_id": "ln\u0001", "quantity": 1}]}).encode(),
            "request.invalid_text",
        ),
        (b'{"lines": [{"line_id": "\xff", "quantity": 1}], "reason": "quality_issue"}', ""),
        (b"[" * 100_000, ""),  # nested too deeply
    ]
    for body, code in bodies:
        answer = _both(pair, path, headers=AS_AGENT, body=body, reaches=True)
        assert answer.status_code == 422, (body[:40], answer.text)
        if code:
            assert answer.json()["code"] == code, answer.text
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        answer = _both(pair, path, headers=AS_AGENT, content_type=content_type, reaches=True)
        assert answer.status_code == 422, answer.text


def test_order_ids_the_framework_refuses_are_left_to_it(pair: Pair) -> None:
    for order_id in ("o" * 65, "ord%01x"):
        answer = _both(pair, _path(order_id), headers=AS_AGENT, reaches=True)
        assert answer.status_code == 422, answer.text
    # with a refused token, the token's 401 comes first: answered by the shortcut
    problem_of(_both(pair, _path("o" * 65), headers={}, reaches=False), 401, "auth.unauthorized")


def test_requests_of_other_shapes_are_left_to_the_framework(pair: Pair) -> None:
    for path in (_path(ALICE_MIXED) + "/", f"/v1/orders/{ALICE_MIXED}/refund-preview/x"):
        _both(pair, path, headers=AS_AGENT, reaches=True)
    # an Idempotency-Key is the idempotency layer's (it stores the answer): left to it; a key
    # of each app's own (on one database, the second app would replay the first one's answer)
    answers = []
    for client, key in ((pair.fast, "preview-key-1"), (pair.framework, "preview-key-2")):
        keyed = {**AS_AGENT, "Idempotency-Key": key, "X-Request-Id": "preview-test-1"}
        answers.append(client.post(_path(ALICE_MIXED), headers=keyed, json=ASK))
    fast, framework = answers
    assert fast.status_code == framework.status_code == 200
    assert fast.content == framework.content
    assert fast.headers.multi_items() == framework.headers.multi_items()
    assert pair.reached[-1:] == [f"POST {_path(ALICE_MIXED)}"]
    # the body limit holds before the shortcut: 413, neither app's router reached
    huge = json.dumps({**ASK, "reason": "x" * 300_000}).encode()
    problem_of(
        _both(pair, _path(ALICE_MIXED), headers=AS_AGENT, body=huge, reaches=False),
        413,
        "request.too_large",
    )


def test_a_preview_after_a_partial_refund_is_the_plan_as_it_is_now(
    pair: Pair, world: World
) -> None:
    path = _path(ALICE_REFUNDED)
    ask = {"lines": [{"line_id": LINE_ALICE_REFUNDED, "quantity": 1}], "reason": "quality_issue"}
    answer = _both(pair, path, headers=AS_AGENT, body=json.dumps(ask).encode(), reaches=False)
    assert answer.status_code == 422  # the one unit was refunded when the world was built
    order = "ord-preview-partial"
    _fresh_order(world, order)
    ask = {"lines": [{"line_id": f"ln-{order}", "quantity": 1}], "reason": "quality_issue"}
    ask["kind"] = "refund_only"
    body = json.dumps(ask).encode()
    first = _both(pair, _path(order), headers=AS_AGENT, body=body, reaches=False).json()
    applied = pair.fast.post(
        f"/v1/orders/{order}/refunds",
        headers={**AS_AGENT, "Idempotency-Key": "preview-partial-1"},
        json={**ask, "expected_plan_hash": first["plan_hash"]},
    )
    assert applied.status_code == 201, applied.text
    after = _both(pair, _path(order), headers=AS_AGENT, body=body, reaches=False).json()
    assert [u["refunded_before"] for u in first["units"]] == [0]
    assert [u["refunded_before"] for u in after["units"]] == [1]
    assert after["plan_hash"] != first["plan_hash"]


def _fresh_order(world: World, order_id: str, quantity: int = 3) -> None:
    line = {
        "id": f"ln-{order_id}",
        "sku": "SKU-P",
        "title": "Pan",
        "merchant_id": M1,
        "quantity": quantity,
        "unit_price": 4000,
    }
    doc = order_doc(order_id, ALICE, [line])
    ingested = world.client.post("/v1/orders", headers=bearer("admin", ADMIN), json={"order": doc})
    assert ingested.status_code == 201, ingested.text


def test_a_preview_is_the_same_bytes_whether_its_plan_was_computed_or_remembered(
    pair: Pair, world: World
) -> None:
    """The service remembers the plans it previewed (services/refunds/apply.py): the first
    preview of an order computes its plan, the next ones find it; both answer the same."""
    _fresh_order(world, "ord-preview-twice")
    ask = {"lines": [{"line_id": "ln-ord-preview-twice", "quantity": 1}], "reason": "quality_issue"}
    sent = {**AS_AGENT, "X-Request-Id": "preview-test-1"}
    path = _path("ord-preview-twice")
    computed = pair.framework.post(path, headers=sent, json=ask)
    remembered = pair.framework.post(path, headers=sent, json=ask)
    assert computed.status_code == 200, computed.text
    assert computed.content == remembered.content
    assert (
        _both(pair, path, headers=AS_AGENT, body=json.dumps(ask).encode(), reaches=False).content
        == computed.content
    )


def test_the_request_log_names_the_route_of_an_answer_before_the_framework(pair: Pair) -> None:
    counted = HTTP_REQUESTS.labels("POST", ROUTE, "200")
    refused = HTTP_REQUESTS.labels("POST", ROUTE, "401")
    before, refused_before = counted._value.get(), refused._value.get()
    for _ in range(3):
        assert pair.fast.post(_path(ALICE_MIXED), headers=AS_AGENT, json=ASK).status_code == 200
    assert pair.fast.post(_path(ALICE_MIXED), json=ASK).status_code == 401
    assert pair.reached == []
    assert counted._value.get() == before + 3
    assert refused._value.get() == refused_before + 1


def test_the_route_the_shortcut_answers_for_is_the_one_the_router_finds(pair: Pair) -> None:
    """No route before the preview's takes its path (the shortcut would answer for another)."""
    assert pair.framework.post(_path(ALICE_MIXED), headers=AS_AGENT, json=ASK).status_code == 200
    assert pair.routed_framework == ["refund_preview"]
