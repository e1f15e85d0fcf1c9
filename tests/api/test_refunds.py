"""Refunds as a resource (issue 12 point 1), on SQLite and PostgreSQL: apply one for an order
from its preview, read it back with its tenders and effects, list and filter refunds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from refundry.store.tables import refunds
from tests.api.conftest import (
    ADMIN,
    AGENT,
    ALICE,
    ALICE_MIXED,
    ALICE_REFUNDED,
    BOB,
    LINE_ALICE_M1,
    LINE_ALICE_M2,
    M1,
    M2,
    M2_MARKERS,
    M3,
    World,
    bearer,
    db_snapshot,
    order_doc,
    problem_of,
    snapshot_diff,
)

SHOP = bearer("admin", ADMIN)
DESK = bearer("agent", AGENT)
ORDER = "ord-carol-direct"
CAROL = "cust-carol"


def _order(world: World) -> None:
    lines = [
        {
            "id": "ln-a",
            "sku": "S-A",
            "title": "A",
            "merchant_id": M1,
            "quantity": 2,
            "unit_price": 3000,
        },
    ]
    answer = world.client.post(
        "/v1/orders", headers=SHOP, json={"order": order_doc(ORDER, CAROL, lines)}
    )
    assert answer.status_code == 201, answer.text


ASK = {
    "lines": [{"line_id": "ln-a", "quantity": 1}],
    "reason": "quality_issue",
    "kind": "refund_only",
}


def _preview(world: World) -> dict[str, Any]:
    answer = world.client.post(f"/v1/orders/{ORDER}/refund-preview", headers=DESK, json=ASK)
    assert answer.status_code == 200, answer.text
    plan: dict[str, Any] = answer.json()
    return plan


def _count(world: World) -> int:
    with world.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(refunds)).scalar_one())


def test_apply_from_a_preview_then_read_it_back(world: World) -> None:
    _order(world)
    plan = _preview(world)
    body = {**ASK, "expected_plan_hash": plan["plan_hash"]}
    first = world.client.post(
        f"/v1/orders/{ORDER}/refunds", headers={**DESK, "Idempotency-Key": "r-1"}, json=body
    )
    assert first.status_code == 201, first.text
    refund = first.json()
    assert first.headers["Location"] == f"/v1/refunds/{refund['id']}"
    assert (refund["order_id"], refund["customer_id"], refund["status"]) == (
        ORDER,
        CAROL,
        "pending",
    )
    assert refund["amount"] == {"amount": plan["amount"]["total"], "currency": "CNY"}
    assert refund["plan_hash"] == plan["plan_hash"] and refund["case_id"] is None
    (tender,) = refund["tenders"]
    assert (tender["tender_id"], tender["gateway_txn_id"], tender["amount"]["amount"]) == (
        "T1",
        f"ali-{ORDER}",
        3000,
    )
    assert [e["type"] for e in refund["effects"]] == [e["type"] for e in plan["effects"]]
    # The same key again: the same refund, nothing applied twice.
    before = _count(world)
    again = world.client.post(
        f"/v1/orders/{ORDER}/refunds", headers={**DESK, "Idempotency-Key": "r-1"}, json=body
    )
    assert again.json()["id"] == refund["id"] and _count(world) == before
    # ... replayed as it was first answered: 201, with the same Location.
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
    assert again.headers.get("Location") == first.headers["Location"]
    read = world.client.get(f"/v1/refunds/{refund['id']}", headers=bearer("customer", CAROL))
    assert read.status_code == 200 and read.json() == refund
    # The preview is stale now: its units are refunded... the other unit gives a new plan.
    stale = world.client.post(
        f"/v1/orders/{ORDER}/refunds", headers={**DESK, "Idempotency-Key": "r-2"}, json=body
    )
    assert stale.status_code == 409, stale.text
    assert (
        stale.json()["code"] == "plan.stale"
        and stale.json()["plan"]["plan_hash"] != plan["plan_hash"]
    )
    assert _count(world) == before


def test_refusals(world: World) -> None:
    _order(world)
    plan = _preview(world)
    body = {**ASK, "expected_plan_hash": plan["plan_hash"]}
    path = f"/v1/orders/{ORDER}/refunds"
    before = _count(world)
    problem_of(world.client.post(path, headers=DESK, json=body), 422, "idempotency.key_missing")
    problem_of(
        world.client.post(
            path, headers={**bearer("customer", CAROL), "Idempotency-Key": "x"}, json=body
        ),
        403,
        "auth.forbidden",
    )
    problem_of(
        world.client.post(
            path, headers={**bearer("customer", BOB), "Idempotency-Key": "x"}, json=body
        ),
        404,
        "order.not_found",
    )
    problem_of(world.client.get("/v1/refunds/rf_nothing", headers=DESK), 404, "refund.not_found")
    assert _count(world) == before


def test_list_filters_and_pages(world: World) -> None:
    _order(world)
    for key in ("a", "b"):
        plan = _preview(world)
        body = {**ASK, "expected_plan_hash": plan["plan_hash"]}
        answer = world.client.post(
            f"/v1/orders/{ORDER}/refunds", headers={**DESK, "Idempotency-Key": key}, json=body
        )
        assert answer.status_code == 201, answer.text
    everything = world.client.get("/v1/refunds", headers=DESK).json()["items"]
    assert {r["order_id"] for r in everything} == {ORDER, ALICE_REFUNDED}
    first = world.client.get(f"/v1/refunds?order_id={ORDER}&limit=1", headers=DESK).json()
    second = world.client.get(
        f"/v1/refunds?order_id={ORDER}&limit=1&cursor={first['next_cursor']}", headers=DESK
    ).json()
    assert first["next_cursor"] is not None and second["next_cursor"] is None
    # Both refunds, each once (applied at the same instant: ordered by id after the time).
    assert sorted([first["items"][0]["seq"], second["items"][0]["seq"]]) == [1, 2]
    mine = world.client.get("/v1/refunds", headers=bearer("customer", ALICE)).json()["items"]
    assert [r["order_id"] for r in mine] == [ALICE_REFUNDED]
    assert world.client.get("/v1/refunds?status=failed", headers=DESK).json()["items"] == []
    # A merchant sees the refunds of its lines, without the customer's tenders.
    theirs = world.client.get("/v1/refunds", headers=bearer("merchant", M1)).json()["items"]
    assert sorted(r["order_id"] for r in theirs) == [ALICE_REFUNDED, ORDER, ORDER]
    assert all(r["tenders"] == [] and r["amount"] is not None for r in theirs)
    assert world.client.get("/v1/refunds", headers=bearer("merchant", M2)).json()["items"] == []


def test_a_merchant_sees_a_shared_refund_as_it_sees_the_order(world: World) -> None:
    """A refund returning lines of m-1 and m-2: each merchant sees it without tenders, amount
    or failure, and with no effect naming the other's line; m-3 is told there is none."""
    ask = {
        "lines": [
            {"line_id": LINE_ALICE_M1, "quantity": 1},
            {"line_id": LINE_ALICE_M2, "quantity": 1},
        ],
        "reason": "quality_issue",
        "kind": "refund_only",
    }
    # Alice's open case holds these units; cancelled, they are free to refund directly.
    cancelled = world.client.post(
        f"/v1/cases/{world.case_alice_mixed}/cancel", json={}, headers=bearer("customer", ALICE)
    )
    assert cancelled.json()["state"] == "cancelled", cancelled.text
    preview = world.client.post(f"/v1/orders/{ALICE_MIXED}/refund-preview", headers=DESK, json=ask)
    assert preview.status_code == 200, preview.text
    body = {**ask, "expected_plan_hash": preview.json()["plan_hash"]}
    applied = world.client.post(
        f"/v1/orders/{ALICE_MIXED}/refunds", headers={**DESK, "Idempotency-Key": "mix"}, json=body
    )
    assert applied.status_code == 201, applied.text
    refund_id = applied.json()["id"]
    assert applied.json()["tenders"] and applied.json()["amount"]["amount"] > 0
    for merchant, other in ((M1, [LINE_ALICE_M2, *M2_MARKERS]), (M2, [LINE_ALICE_M1])):
        seen = world.client.get(f"/v1/refunds/{refund_id}", headers=bearer("merchant", merchant))
        assert seen.status_code == 200, seen.text
        doc = seen.json()
        assert (doc["tenders"], doc["amount"], doc["failure_code"]) == ([], None, None)
        assert not [m for m in other if m in seen.text], seen.text
        listed = world.client.get(
            f"/v1/refunds?order_id={ALICE_MIXED}", headers=bearer("merchant", merchant)
        ).json()["items"]
        assert [r["id"] for r in listed] == [refund_id]
    problem_of(
        world.client.get(f"/v1/refunds/{refund_id}", headers=bearer("merchant", M3)),
        404,
        "refund.not_found",
    )
    assert world.client.get("/v1/refunds", headers=bearer("merchant", M3)).json()["items"] == []


def test_units_an_open_case_holds_are_the_cases_to_refund(world: World) -> None:
    """A direct refund may not take the units an open case holds: 409
    ``refund.units_held_by_case`` and nothing changes; the units no case holds still refund,
    and the case's own refund takes its unit afterwards (one refund per unit, never two)."""
    _order(world)
    opened = world.client.post(
        "/v1/cases",
        json={"order_id": ORDER, **ASK, "kind": "return_and_refund"},
        headers=bearer("customer", CAROL),
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["state"] == "awaiting_return", opened.text  # approved by the rules
    both = {**ASK, "lines": [{"line_id": "ln-a", "quantity": 2}]}
    plan = world.client.post(f"/v1/orders/{ORDER}/refund-preview", headers=DESK, json=both)
    assert plan.status_code == 200, plan.text  # a preview holds nothing and reserves nothing
    before = db_snapshot(world.engine)
    held = world.client.post(
        f"/v1/orders/{ORDER}/refunds",
        headers={**DESK, "Idempotency-Key": "held-1"},
        json={**both, "expected_plan_hash": plan.json()["plan_hash"]},
    )
    problem = problem_of(held, 409, "refund.units_held_by_case")
    assert problem["detail"].startswith("line 'ln-a': 1 unit(s) are held by an open case and 1")
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
    one = _preview(world)
    free = world.client.post(
        f"/v1/orders/{ORDER}/refunds",
        headers={**DESK, "Idempotency-Key": "held-2"},
        json={**ASK, "expected_plan_hash": one["plan_hash"]},
    )
    assert free.status_code == 201, free.text
    case = f"/v1/cases/{opened.json()['id']}"
    for who, act, body in (
        (bearer("customer", CAROL), "ship", {"tracking_number": "SF1234567890"}),
        (DESK, "receive", {}),
        (DESK, "inspect", {"result": "pass"}),
    ):
        moved = world.client.post(f"{case}/{act}", json=body, headers=who)
        assert moved.status_code == 200, moved.text
    assert moved.json()["state"] == "refunding", moved.text
    order = world.client.get(f"/v1/orders/{ORDER}", headers=DESK).json()
    assert [line["refunded_qty"] for line in order["lines"]] == [2]
