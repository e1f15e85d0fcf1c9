"""A new customer opens a case over HTTP under the default policy (issue 14 point 4, issue 12
point 3): a real server process on SQLite and PostgreSQL, production settings (every secret
set, every adapter named), no policy file — so the default risk rules, review rules and
one-time-code threshold apply.

Before the shop could send the account's creation time, every newly ingested customer counted
as a 0-day-old account, ``new_account_large`` asked for a one-time code, and the sandbox SMS
code reaches no phone: the customer could not open a case at all.

The last tests drive an order's status update (issue 12 point 3) and a refund applied from its
preview (issue 12 point 1) through the same server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundry.demo import worked_examples as ex
from tests.api.test_real_server import ADMIN, AGENT, Server, serve_on_backend

SMALL = 5000  # 50.00: under the one-time-code threshold (1000.00) of the default policy


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_on_backend(request, tmp_path_factory, policy_text=None)


def _now() -> datetime:
    return datetime.now(UTC)


def _ingest(server: Server, name: str, customer: dict[str, Any] | None) -> tuple[str, str]:
    """A paid, delivered order of 50.00 for a customer refundry has never seen."""
    customer_id, order_id = f"c-{name}", f"o-{name}"
    order = ex.order(
        order_id,
        [ex.line("A", SMALL)],
        SMALL,
        customer_id=customer_id,
        paid_at=(_now() - timedelta(days=3)).isoformat(),
    )
    doc: dict[str, Any] = {"order": order}
    if customer is not None:
        doc["customer"] = customer
    server.call("POST", "/v1/orders", ADMIN, doc, status=201)
    return customer_id, order_id


def _open(server: Server, customer_id: str, order_id: str) -> Any:
    body = {
        "order_id": order_id,
        "lines": [{"line_id": "A", "quantity": 1}],
        "reason": "quality_issue",
        "kind": "refund_only",
    }
    return server.http.post("/v1/cases", headers=server.token("customer", customer_id), json=body)


def _risk(server: Server, case_id: str) -> dict[str, Any]:
    risk: dict[str, Any] = server.call("GET", f"/v1/cases/{case_id}", AGENT)["risk"]
    return risk


def test_a_new_customer_with_an_old_account_opens_a_case_without_a_code(server: Server) -> None:
    opened = (_now() - timedelta(days=400)).isoformat().replace("+00:00", "Z")
    customer, order = _ingest(
        server,
        "old-account",
        {"account_created_at": opened, "contact": {"phone": "+8613800000001"}},
    )
    answer = _open(server, customer, order)
    assert answer.status_code == 201, answer.text
    risk = _risk(server, answer.json()["id"])
    assert risk["reasons"] == [] and risk["not_applied"] == []
    assert risk["decision"] == "approve"
    profile = server.call("GET", f"/v1/customers/{customer}", ADMIN)
    assert profile["account_created_at"] == opened


def test_a_customer_whose_account_age_is_unknown_is_not_taken_for_a_new_account(
    server: Server,
) -> None:
    customer, order = _ingest(server, "age-unknown", None)
    answer = _open(server, customer, order)
    assert answer.status_code == 201, answer.text
    risk = _risk(server, answer.json()["id"])
    assert risk["decision"] == "approve" and risk["reasons"] == []
    assert [n["rule"] for n in risk["not_applied"]] == ["new_account_large"]
    assert "the shop sent no account creation time" in risk["not_applied"][0]["explain"]


def test_a_truly_new_account_still_needs_the_code_until_the_shop_corrects_its_age(
    server: Server,
) -> None:
    two_days = (_now() - timedelta(days=2)).isoformat()
    customer, order = _ingest(server, "new-account", {"account_created_at": two_days})
    refused = _open(server, customer, order)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "identity.code_required"
    # The shop's back end says the account is older (a migrated account): the same request opens.
    old = (_now() - timedelta(days=30)).isoformat()
    server.call("PATCH", f"/v1/customers/{customer}", ADMIN, {"account_created_at": old})
    answer = _open(server, customer, order)
    assert answer.status_code == 201, answer.text


def test_the_shop_marks_an_order_shipped_and_the_shipping_fee_stays(server: Server) -> None:
    """Issue 12 point 3 over HTTP: a paid order gives its shipping fee back with its last unit
    (SPEC §3.7) until the shop says it shipped."""
    customer, order_id = "c-shipping", "o-shipping"
    order = ex.order(
        order_id,
        [ex.line("A", SMALL)],
        SMALL + 800,
        customer_id=customer,
        status="paid",
        shipping_fee=800,
        paid_at=(_now() - timedelta(days=1)).isoformat(),
    )
    server.call("POST", "/v1/orders", ADMIN, {"order": order}, status=201)
    me = ("customer", customer)
    ask = {
        "lines": [{"line_id": "A", "quantity": 1}],
        "reason": "changed_mind",
        "kind": "refund_only",
    }
    path = f"/v1/orders/{order_id}/refund-preview"
    assert server.call("POST", path, me, ask)["amount"]["shipping"] == 800
    shipped_at = (_now() - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    view = server.call(
        "POST", f"/v1/orders/{order_id}/status", ADMIN, {"status": "shipped", "at": shipped_at}
    )
    assert (view["status"], view["shipped_at"]) == ("shipped", shipped_at)
    assert server.call("POST", path, me, ask)["amount"]["shipping"] == 0
    early = server.http.post(
        f"/v1/orders/{order_id}/status",
        headers=server.token(*ADMIN),
        json={"status": "completed", "at": shipped_at},
    )
    assert (early.status_code, early.json()["code"]) == (409, "order.status_out_of_order")


def test_the_shop_applies_a_refund_from_its_preview_and_reads_it(server: Server) -> None:
    """Issue 12 point 1 over HTTP: preview, apply with the plan hash and a key, read it back;
    the same key again is the same refund."""
    customer, order_id = _ingest(server, "direct-refund", None)
    ask = {
        "lines": [{"line_id": "A", "quantity": 1}],
        "reason": "quality_issue",
        "kind": "refund_only",
    }
    plan = server.call("POST", f"/v1/orders/{order_id}/refund-preview", ADMIN, ask)
    body = {**ask, "expected_plan_hash": plan["plan_hash"]}
    headers = {**server.token(*ADMIN), "Idempotency-Key": "shop-refund-1"}
    first = server.http.post(f"/v1/orders/{order_id}/refunds", headers=headers, json=body)
    assert first.status_code == 201, first.text
    refund = first.json()
    assert first.headers["location"] == f"/v1/refunds/{refund['id']}"
    assert (refund["status"], refund["amount"]) == ("pending", {"amount": SMALL, "currency": "CNY"})
    again = server.http.post(f"/v1/orders/{order_id}/refunds", headers=headers, json=body)
    assert again.json()["id"] == refund["id"]
    mine = server.call("GET", f"/v1/refunds/{refund['id']}", ("customer", customer))
    assert mine["tenders"][0]["gateway_txn_id"] == f"ali-{order_id}"
    listed = server.call("GET", f"/v1/refunds?order_id={order_id}", ("customer", customer))
    assert [r["id"] for r in listed["items"]] == [refund["id"]]
