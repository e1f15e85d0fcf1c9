"""The shop's back end describes its customers over HTTP (issue 12 point 3, issue 14 point 4):
``GET`` / ``PATCH /v1/customers/{id}`` and ``POST /v1/customers/{id}/adjustments``, on SQLite
and PostgreSQL. Who may call them is tests/api/test_authorization.py's."""

from __future__ import annotations

from tests.api.conftest import (
    ADMIN,
    ALICE,
    ALICE_PHONE,
    World,
    bearer,
    db_snapshot,
    problem_of,
    snapshot_diff,
)

SHOP = bearer("admin", ADMIN)
GOODWILL = {"kind": "points", "points": 250, "source": {"type": "goodwill", "id": "gw-7"}}


def test_the_shop_sets_the_account_creation_time_and_contacts(world: World) -> None:
    http = world.client
    before = http.get(f"/v1/customers/{ALICE}", headers=SHOP).json()
    assert before["account_created_at"] is None  # the world's orders sent none
    assert before["contact"]["phone"] == ALICE_PHONE
    body = {
        "account_created_at": "2023-05-01T10:00:00+08:00",
        "contact": {"email": "alice@example.com", "channels": ["email", "in_app"]},
    }
    answer = http.patch(f"/v1/customers/{ALICE}", headers=SHOP, json=body)
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["account_created_at"] == "2023-05-01T02:00:00Z"
    assert view["contact"] == {
        "phone": None,
        "email": "alice@example.com",
        "channels": ["email", "in_app"],
    }
    assert http.get(f"/v1/customers/{ALICE}", headers=SHOP).json() == view


def test_bad_updates_are_specific_and_change_nothing(world: World) -> None:
    http = world.client
    before = db_snapshot(world.engine)
    cases = [
        ("cust-nobody", {"locale": "en"}, 404, "customer.not_found", None),
        (
            ALICE,
            {"account_created_at": "2099-01-01T00:00:00Z"},
            422,
            "customer.invalid",
            "account_created_at",
        ),
        (
            ALICE,
            {"account_created_at": "2020-01-01T00:00:00"},
            422,
            "request.invalid",
            "account_created_at",
        ),
        (ALICE, {"tier": "gold"}, 422, "request.unknown_field", "tier"),
    ]
    for customer, body, status, code, field in cases:
        answer = http.patch(f"/v1/customers/{customer}", headers=SHOP, json=body)
        problem_of(answer, status, code, field)
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


def test_an_adjustment_posts_once_per_key(world: World) -> None:
    http = world.client
    path = f"/v1/customers/{ALICE}/adjustments"
    first = http.post(path, headers={**SHOP, "Idempotency-Key": "adj-1"}, json=GOODWILL)
    assert first.status_code == 201, first.text
    view = first.json()
    assert (view["points"], view["amount"], view["points_after"], view["wallet_after"]) == (
        250,
        None,
        1250,
        None,
    )
    assert view["source"] == {"type": "goodwill", "id": "gw-7"}
    again = http.post(path, headers={**SHOP, "Idempotency-Key": "adj-1"}, json=GOODWILL)
    assert (again.status_code, again.json()["id"]) == (201, view["id"])  # the stored answer
    me = http.get("/v1/me/points", headers=bearer("customer", ALICE)).json()
    assert me["balance"] == 1250
    wallet = {
        "kind": "wallet",
        "amount": {"amount": 990, "currency": "CNY"},
        "source": {"type": "compensation", "id": "t-1"},
    }
    paid = http.post(path, headers={**SHOP, "Idempotency-Key": "adj-2"}, json=wallet)
    assert paid.status_code == 201, paid.text
    assert paid.json()["amount"] == {"amount": 990, "currency": "CNY"}
    # the wallet's balance after it, as money; a wallet adjustment leaves points_after null
    assert (paid.json()["points_after"], paid.json()["wallet_after"]["currency"]) == (None, "CNY")
    assert paid.json()["wallet_after"]["amount"] >= 990


def _state(world: World) -> dict[str, tuple[int, str]]:
    """Every table but the stored Idempotency-Key answers (a refusal is stored to replay)."""
    return {k: v for k, v in db_snapshot(world.engine).items() if k != "api_idempotency"}


def test_a_refused_adjustment_is_specific_and_changes_nothing(world: World) -> None:
    http = world.client
    path = f"/v1/customers/{ALICE}/adjustments"
    before = _state(world)
    problem_of(
        http.post(path, headers=SHOP, json=GOODWILL),
        422,
        "idempotency.key_missing",
        "Idempotency-Key",
    )
    over = {**GOODWILL, "points": -5000}
    problem_of(
        http.post(path, headers={**SHOP, "Idempotency-Key": "a"}, json=over),
        422,
        "ledger.insufficient_funds",
    )
    usd = {**GOODWILL, "kind": "wallet", "points": None, "amount": {"amount": 1, "currency": "USD"}}
    problem_of(
        http.post(path, headers={**SHOP, "Idempotency-Key": "b"}, json=usd),
        422,
        "adjustment.currency_mismatch",
        "amount.currency",
    )
    problem_of(
        http.post(
            "/v1/customers/cust-nobody/adjustments",
            headers={**SHOP, "Idempotency-Key": "c"},
            json=GOODWILL,
        ),
        404,
        "customer.not_found",
    )
    assert snapshot_diff(before, _state(world)) == ""
