"""Units already refunded, asked again in a case (issue 16 point 6): 409
``case.units_unavailable``, as docs/errors.md and docs/case-process.md say, on SQLite and
PostgreSQL; a preview, which holds no units, keeps the plan's own refusal."""

from __future__ import annotations

from tests.api.conftest import (
    ALICE,
    ALICE_M1,
    LINE_ALICE_ONLY_M1,
    M1,
    World,
    bearer,
    db_snapshot,
    order_doc,
    snapshot_diff,
)
from tests.api.conftest import (
    problem_of as _problem,
)

AGENT = bearer("agent", "agent-li")
ADMIN = bearer("admin", "admin-root")
CUSTOMER = bearer("customer", ALICE)


def test_refunded_units_asked_again_in_a_case_are_409_case_units_unavailable(
    world: World,
) -> None:
    """docs/errors.md and docs/case-process.md: a case's units must be free — not refunded and
    not held by another open case — checked before the plan (the plan's own codes answer a
    preview, which holds nothing)."""
    line = {"id": "ln-two", "sku": "SKU-2", "title": "Two", "merchant_id": M1, "unit_price": 4000}
    order = order_doc("ord-alice-two", ALICE, [{**line, "quantity": 2}])
    assert world.client.post("/v1/orders", json={"order": order}, headers=ADMIN).status_code == 201
    approved = world.client.post(f"/v1/cases/{world.case_alice_m1}/approve", json={}, headers=AGENT)
    assert approved.json()["state"] == "refunding", approved.text
    first = world.client.post(
        "/v1/cases",
        json={
            "order_id": "ord-alice-two",
            "lines": [{"line_id": "ln-two", "quantity": 1}],
            "reason": "quality_issue",
            "kind": "refund_only",
        },
        headers=CUSTOMER,
    )
    assert first.status_code == 201, first.text
    refunded = world.client.post(f"/v1/cases/{first.json()['id']}/approve", json={}, headers=AGENT)
    assert refunded.json()["state"] == "refunding", refunded.text

    before = db_snapshot(world.engine)
    for order_id, line_id, quantity, free in (
        (ALICE_M1, LINE_ALICE_ONLY_M1, 1, 0),  # every unit refunded
        ("ord-alice-two", "ln-two", 2, 1),  # one of two refunded
    ):
        again = world.client.post(
            "/v1/cases",
            json={
                "order_id": order_id,
                "lines": [{"line_id": line_id, "quantity": quantity}],
                "reason": "quality_issue",
                "kind": "refund_only",
            },
            headers=CUSTOMER,
        )
        problem = _problem(again, 409, "case.units_unavailable")
        assert problem["detail"] == (
            f"line {line_id!r} has {free} unit(s) not refunded and not in another open case; "
            f"{quantity} asked"
        )
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
    # A preview holds no units: the plan's own refusal.
    preview = world.client.post(
        "/v1/orders/ord-alice-two/refund-preview",
        json={
            "lines": [{"line_id": "ln-two", "quantity": 2}],
            "reason": "quality_issue",
            "kind": "refund_only",
        },
        headers=CUSTOMER,
    )
    _problem(preview, 422, "refund.quantity_exceeds_remaining", "request.lines[0].quantity")
