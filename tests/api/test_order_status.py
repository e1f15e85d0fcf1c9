"""``POST /v1/orders/{id}/status`` (issue 12 point 3): the shop's back end marks an order
shipped, delivered, completed or cancelled, on SQLite and PostgreSQL; the review rules read
the delivery time it sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api.conftest import (
    ADMIN,
    M1,
    NOW,
    World,
    bearer,
    db_snapshot,
    order_doc,
    problem_of,
    snapshot_diff,
)

SHOP = bearer("admin", ADMIN)
CAROL = "cust-carol"


def _ingest(
    world: World, order_id: str, status: str, paid_days_ago: int, price: int = 20000
) -> None:
    doc = order_doc(
        order_id,
        CAROL,
        [
            {
                "id": "ln-1",
                "sku": "SKU-1",
                "title": "Lamp",
                "merchant_id": M1,
                "quantity": 1,
                "unit_price": price,  # by default over the small_amount rule's 100.00
            }
        ],
    )
    doc.update(status=status, paid_at=(NOW - timedelta(days=paid_days_ago)).isoformat())
    answer = world.client.post("/v1/orders", headers=SHOP, json={"order": doc})
    assert answer.status_code == 201, answer.text


def _status(world: World, order_id: str, status: str, days_ago: float) -> Any:
    at = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return world.client.post(
        f"/v1/orders/{order_id}/status", headers=SHOP, json={"status": status, "at": at}
    )


def _changed_mind(world: World, order_id: str) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "lines": [{"line_id": "ln-1", "quantity": 1}],
        "reason": "changed_mind",
        "kind": "return_and_refund",
    }
    answer = world.client.post("/v1/cases", headers=bearer("customer", CAROL), json=body)
    assert answer.status_code == 201, answer.text
    case: dict[str, Any] = answer.json()
    return case


def test_the_review_rules_count_days_from_the_delivery_the_shop_sent(world: World) -> None:
    """The default ``late_changed_mind`` rule rejects a changed mind more than 7 days after
    delivery. Three orders paid 20 days ago and shipped: one delivered 2 days ago, one 10 days
    ago, one not delivered yet (the window counted from delivery has not started: the rule
    does not hold)."""
    for order_id in ("ord-carol-1", "ord-carol-2", "ord-carol-3"):
        _ingest(world, order_id, "paid", 20)
        assert _status(world, order_id, "shipped", 19).status_code == 200
    assert _status(world, "ord-carol-2", "delivered", 10).status_code == 200
    view = _status(world, "ord-carol-1", "delivered", 2)
    assert view.status_code == 200, view.text
    order = view.json()
    assert (order["status"], order["delivered_at"]) == (
        "delivered",
        (NOW - timedelta(days=2)).isoformat().replace("+00:00", "Z"),
    )
    assert order["shipped_at"] == (NOW - timedelta(days=19)).isoformat().replace("+00:00", "Z")
    assert _changed_mind(world, "ord-carol-1")["state"] == "under_review"
    assert _changed_mind(world, "ord-carol-2")["state"] == "rejected"
    assert _changed_mind(world, "ord-carol-3")["state"] == "under_review"


def test_an_order_not_delivered_yet_is_within_30_days_of_delivery(world: World) -> None:
    """The default ``small_amount`` rule approves 100.00 or less within 30 days of delivery: a
    shipped order paid 40 days ago, not delivered yet, is inside that window (it has not
    started), so a not-received claim on it is approved."""
    _ingest(world, "ord-carol-late", "paid", 40, price=5000)
    assert _status(world, "ord-carol-late", "shipped", 39).status_code == 200
    body = {
        "order_id": "ord-carol-late",
        "lines": [{"line_id": "ln-1", "quantity": 1}],
        "reason": "not_received",
        "kind": "refund_only",
    }
    answer = world.client.post("/v1/cases", headers=bearer("customer", CAROL), json=body)
    assert answer.status_code == 201, answer.text
    case = answer.json()
    agent = world.client.get(f"/v1/cases/{case['id']}", headers=bearer("agent", "li")).json()
    assert agent["review"]["rule"] == "small_amount", agent["review"]


def test_refused_updates_have_their_own_codes_and_change_nothing(world: World) -> None:
    _ingest(world, "ord-carol-9", "paid", 5)
    assert _status(world, "ord-carol-9", "shipped", 4).status_code == 200
    before = {k: v for k, v in db_snapshot(world.engine).items() if k != "api_idempotency"}
    problem_of(_status(world, "ord-carol-9", "cancelled", 1), 409, "order.already_shipped")
    problem_of(_status(world, "ord-carol-9", "completed", 1), 409, "order.status_out_of_order")
    problem_of(_status(world, "ord-carol-9", "shipped", 3), 409, "order.status_conflict")
    problem_of(_status(world, "ord-carol-9", "delivered", 4.5), 422, "order.update_invalid", "at")
    problem_of(_status(world, "ord-nobody", "shipped", 1), 404, "order.not_found")
    problem_of(_status(world, "ord-carol-9", "refunded", 1), 422, "request.invalid", "status")
    after = {k: v for k, v in db_snapshot(world.engine).items() if k != "api_idempotency"}
    assert snapshot_diff(before, after) == ""
    again = _status(world, "ord-carol-9", "shipped", 4)  # the shop retries: answered as done
    assert (again.status_code, again.json()["status"]) == (200, "shipped")
