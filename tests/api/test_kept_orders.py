"""Kept orders (refundry/api/kept.py), on SQLite and PostgreSQL: ``GET /v1/orders/{id}`` answered
from memory with one read while the order's customer's data has not moved, answered afresh as
soon as it has, byte for byte what a server keeping nothing answers, and never to anyone but
the actor it was answered for."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from refundry.api.app import create_app
from refundry.api.auth import issue_token, token_claims
from refundry.services.tokens import revoke_token
from refundry.settings import Settings
from tests.api.conftest import (
    ADMIN,
    AGENT,
    ALICE,
    ALICE_MIXED,
    BOB,
    M2,
    NOW,
    SECRET,
    TITLE_M2,
    World,
    bearer,
    order_doc,
    problem_of,
)
from tests.tools import statements

ORDER = f"/v1/orders/{ALICE_MIXED}"
FRESH = "ord-alice-kept"
AS_AGENT = bearer("agent", AGENT)


def _settings(world: World, **extra: Any) -> Settings:
    ctx = world.app.state.ctx
    return ctx.settings.model_copy(update=extra)  # type: ignore[no-any-return]


def _afresh(world: World, path: str, headers: dict[str, str]) -> Any:
    """``path`` as a server that keeps nothing answers it now."""
    app = create_app(_settings(world, page_cache_entries=0), clock=lambda: NOW)
    try:
        return TestClient(app).get(path, headers=headers)
    finally:
        app.state.ctx.engine.dispose()


def _kept(world: World, headers: dict[str, str], path: str = ORDER) -> Any:
    """The order asked until it is kept (the first request learns its customer, the second
    keeps it); then asked again, which must be answered with the one version read."""
    for _ in range(2):
        assert world.client.get(path, headers=headers).status_code == 200
    with statements(world.engine) as seen:
        again = world.client.get(path, headers=headers)
    if (
        world.engine.dialect.name == "postgresql"
        and world.app.state.ctx.runtime.loop_reads._slots is not None
    ):
        assert seen == []  # the version is read on the event loop's own connection
    else:
        assert len(seen) == 1 and "audit_heads" in seen[0], seen
    return again


def test_a_kept_order_is_answered_with_one_read_and_is_what_is_answered_afresh(
    world: World,
) -> None:
    with statements(world.engine) as drawing:
        first = world.client.get(ORDER, headers=AS_AGENT)
    assert len(drawing) > 3  # the order's reads
    kept = _kept(world, AS_AGENT)
    afresh = _afresh(world, ORDER, AS_AGENT)
    assert kept.status_code == afresh.status_code == 200
    assert kept.content == first.content == afresh.content
    assert kept.headers["content-type"] == afresh.headers["content-type"] == "application/json"
    assert kept.headers["content-length"] == afresh.headers["content-length"]
    assert "x-request-id" in kept.headers
    assert kept.json()["id"] == ALICE_MIXED and kept.json()["customer_id"] == ALICE


def test_the_order_is_answered_afresh_once_the_customers_data_moves(world: World) -> None:
    before = _kept(world, AS_AGENT).json()
    assert before["status"] == "delivered"
    at = (NOW - timedelta(hours=1)).isoformat()
    completed = world.client.post(
        f"{ORDER}/status", headers=bearer("admin", ADMIN), json={"status": "completed", "at": at}
    )
    assert completed.status_code == 200, completed.text
    with statements(world.engine) as seen:
        after = world.client.get(ORDER, headers=AS_AGENT)
    assert len(seen) > 3  # the version moved: read again
    assert after.json()["status"] == "completed"
    assert after.content == _afresh(world, ORDER, AS_AGENT).content
    assert _kept(world, AS_AGENT).content == after.content  # and kept again at the new version


def test_a_refund_applied_elsewhere_is_seen_at_once(world: World) -> None:
    """A write by another process (here: another app on the same database) moves the version
    this server reads, so its kept answer is not answered again."""
    doc = order_doc(
        FRESH,
        ALICE,
        [
            {
                "id": "ln-f",
                "sku": "SKU-F",
                "title": "Fan",
                "merchant_id": M2,
                "quantity": 2,
                "unit_price": 5000,
            }
        ],
    )
    ingested = world.client.post("/v1/orders", headers=bearer("admin", ADMIN), json={"order": doc})
    assert ingested.status_code == 201, ingested.text
    path = f"/v1/orders/{FRESH}"
    before = _kept(world, AS_AGENT, path).json()
    line = before["lines"][0]
    ask = {"lines": [{"line_id": line["line_id"], "quantity": 1}], "reason": "quality_issue"}
    ask["kind"] = "refund_only"
    other = create_app(_settings(world), clock=lambda: NOW)
    try:
        client = TestClient(other)
        plan = client.post(f"{path}/refund-preview", headers=AS_AGENT, json=ask)
        assert plan.status_code == 200, plan.text
        applied = client.post(
            f"{path}/refunds",
            headers={**AS_AGENT, "Idempotency-Key": "kept-orders-1"},
            json={**ask, "expected_plan_hash": plan.json()["plan_hash"]},
        )
        assert applied.status_code == 201, applied.text
    finally:
        other.state.ctx.engine.dispose()
    after = world.client.get(path, headers=AS_AGENT).json()
    refunded = {x["line_id"]: x["refunded_qty"] for x in after["lines"]}
    assert refunded[line["line_id"]] == line["refunded_qty"] + 1
    assert after != before


def test_each_actor_has_its_own_kept_answer(world: World) -> None:
    agent = _kept(world, AS_AGENT).json()
    assert agent["tenders"]  # the agent sees the payment
    merchant = world.client.get(ORDER, headers=bearer("merchant", M2)).json()
    assert merchant["tenders"] == [] and [x["title"] for x in merchant["lines"]] == [TITLE_M2]
    assert _kept(world, bearer("merchant", M2)).json() == merchant  # kept apart, redacted
    owner = _kept(world, bearer("customer", ALICE)).json()
    assert owner["tenders"] == agent["tenders"]
    # Bob is told there is no such order, though Alice's answers are kept
    problem_of(world.client.get(ORDER, headers=bearer("customer", BOB)), 404, "order.not_found")
    problem_of(world.client.get(ORDER), 401, "auth.unauthorized")
    forged = {
        "Authorization": "Bearer " + issue_token(b"x" * 32, role="agent", subject=AGENT, now=NOW)
    }
    assert world.client.get(ORDER, headers=forged).status_code == 401


def test_a_revoked_token_gets_no_kept_answer(world: World) -> None:
    token = issue_token(SECRET, role="agent", subject=AGENT, now=NOW)
    headers = {"Authorization": f"Bearer {token}"}
    _kept(world, headers)
    ctx = world.app.state.ctx
    claims = token_claims(ctx.settings.token_secrets(), token, current=ctx.settings.token_key_id)
    assert revoke_token(
        world.engine,
        jti=str(claims["jti"]),
        subject=AGENT,
        expires_at=NOW + timedelta(days=1),
        actor=f"admin:{ADMIN}",
        reason="laptop stolen",
        now=NOW,
    )
    ctx.revocations.forget()
    problem_of(world.client.get(ORDER, headers=headers), 401, "auth.token_revoked")


def test_keeping_nothing_reads_every_time(world: World) -> None:
    app = create_app(_settings(world, page_cache_entries=0), clock=lambda: NOW)
    try:
        client = TestClient(app)
        for _ in range(3):
            with statements(app.state.ctx.engine) as seen:
                assert client.get(ORDER, headers=AS_AGENT).status_code == 200
            assert len(seen) > 3
        assert len(app.state.ctx.kept) == 0
    finally:
        app.state.ctx.engine.dispose()
