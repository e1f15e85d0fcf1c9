"""Orders, cases and one-time codes over HTTP (TestClient), on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, insert, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.sms import SandboxSms
from refundry.api.app import create_app
from refundry.api.auth import issue_token
from refundry.demo import worked_examples as ex
from refundry.settings import Settings
from refundry.store.tables import customer_contacts, outbox

SECRET = b"orders-cases-secret"
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
ALICE, BOB = ex.CUSTOMER, "c-200"  # ex.CUSTOMER owns the worked examples' orders
ALICE_PHONE = "+8613800000001"
# No review rule, no risk rule, no 极速退款: every case waits for a person, as in a queue.
# A one-time code is needed above 200.00.
POLICY = """
[refund]
[review]
rules = []
[express]
enabled = false
[risk]
rules = []
[identity]
otp_above_amount = 20000
"""
RETURNS_ADDRESS = "refundry returns centre, 1 Warehouse Road, Shanghai"


def line(line_id: str, price: int, *, merchant: str = "m-1", quantity: int = 1) -> dict[str, Any]:
    return {
        "id": line_id,
        "sku": f"SKU-{line_id}",
        "title": f"Item {line_id}",
        "merchant_id": merchant,
        "quantity": quantity,
        "unit_price": price,
    }


MULTI = ex.order("o-multi", [line("P", 1000, quantity=5)], 5000)
MIXED = ex.order("o-mixed", [line("A1", 10000), line("B1", 5000, merchant="m-2")], 15000)
BOBS = {**ex.order("o-bob", [line("Z", 3000)], 3000), "customer_id": BOB}


def auth(role: str, sub: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, role=role, subject=sub, now=NOW)}


CUSTOMER, CUSTOMER_B = auth("customer", ALICE), auth("customer", BOB)
AGENT, ADMIN = auth("agent", "li"), auth("admin", "shop")
MERCHANT_1, MERCHANT_2, MERCHANT_3 = (auth("merchant", m) for m in ("m-1", "m-2", "m-3"))


@dataclass
class Shop:
    client: TestClient
    engine: Engine
    sms: SandboxSms
    clock: ManualClock

    def ingest(self, *orders: dict[str, Any]) -> None:
        for doc in orders:
            r = self.client.post("/v1/orders", json={"order": doc}, headers=ADMIN)
            assert r.status_code == 201, r.json()

    def open(self, order_id: str, *lines: str, **extra: Any) -> dict[str, Any]:
        r = self.client.post(
            "/v1/cases", json=case_body(order_id, *lines, **extra), headers=CUSTOMER
        )
        assert r.status_code == 201, r.json()
        return dict(r.json())

    def act(self, case_id: str, action: str, who: dict[str, str], body: Any = None) -> Any:
        return self.client.post(f"/v1/cases/{case_id}/{action}", json=body or {}, headers=who)


def case_body(order_id: str, *lines: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "lines": [{"line_id": x, "quantity": 1} for x in lines],
        "reason": "changed_mind",
        "kind": "return_and_refund",
        **extra,
    }


@pytest.fixture()
def make_shop(db_url: str) -> Iterator[Callable[..., Shop]]:
    made: list[Shop] = []

    def make(**settings: Any) -> Shop:
        sms, clock = SandboxSms(), ManualClock(NOW)
        app = create_app(
            Settings(database_url=db_url, secret=SECRET, policy_text=POLICY, dev=True, **settings),
            sms=sms,
            clock=clock,
        )
        shop = Shop(TestClient(app).__enter__(), app.state.ctx.engine, sms, clock)
        made.append(shop)
        return shop

    yield make
    for shop in made:
        shop.client.__exit__(None, None, None)
        shop.engine.dispose()


@pytest.fixture()
def shop(make_shop: Callable[..., Shop]) -> Shop:
    s = make_shop()
    s.ingest(ex.THRESHOLD, MULTI, MIXED, BOBS)
    return s


def snapshot(engine: Engine) -> dict[str, str]:
    """Every table's rows, hashed: "nothing changed" is an equality."""
    meta = MetaData()
    meta.reflect(bind=engine)
    with engine.connect() as conn:
        return {
            name: hashlib.sha256(
                "\n".join(sorted(repr(tuple(r)) for r in conn.execute(select(t)))).encode()
            ).hexdigest()
            for name, t in meta.tables.items()
        }


def cny(amount: int) -> dict[str, object]:
    return {"amount": amount, "currency": "CNY"}


# -- orders --------------------------------------------------------------------------------------


def test_ingest_is_201_then_200_with_the_same_summary_and_409_on_other_content(
    make_shop: Callable[..., Shop],
) -> None:
    shop = make_shop()
    body = {"order": ex.THRESHOLD, "customer": {"points_balance": 120}}
    first = shop.client.post("/v1/orders", json=body, headers=ADMIN)
    assert first.status_code == 201
    assert first.json() == {
        "id": "o-500-100",
        "customer_id": ALICE,
        "currency": "CNY",
        "status": "delivered",
        "paid_at": "2026-11-01T02:00:00Z",
        "shipped_at": None,
        "delivered_at": None,  # the document sent none
        "completed_at": None,
        "cancelled_at": None,
        "ingested_at": "2026-11-24T04:00:00Z",
        "lines": [
            {
                "line_id": "X",
                "sku": "SKU-X",
                "title": "Item X",
                "merchant_id": "m-1",
                "quantity": 1,
                "unit_price": cny(40000),
                "paid": cny(33333),
                "gift_of": None,
                "refunded_qty": 0,
                "refund_failed_qty": 0,
            },
            {
                "line_id": "Y",
                "sku": "SKU-Y",
                "title": "Item Y",
                "merchant_id": "m-1",
                "quantity": 1,
                "unit_price": cny(20000),
                "paid": cny(16667),
                "gift_of": None,
                "refunded_qty": 0,
                "refund_failed_qty": 0,
            },
        ],
        "tenders": [
            {
                "tender_id": "T1",
                "kind": "external",
                "method": "alipay",
                "amount": cny(50000),
                "points": 0,
                "refunded": cny(0),
                "refund_failed": cny(0),
            }
        ],
        "cases": [],
        "reversals": [],
    }
    again = shop.client.post("/v1/orders", json=body, headers=ADMIN)
    assert (again.status_code, again.json()) == (200, first.json())
    other = copy.deepcopy(ex.THRESHOLD)
    other["lines"][1]["title"] = "Item Y, renamed"
    conflict = shop.client.post("/v1/orders", json={"order": other}, headers=ADMIN)
    assert (conflict.status_code, conflict.json()["code"]) == (409, "order.conflict")
    assert conflict.headers["content-type"] == "application/problem+json"
    refused = shop.client.post("/v1/orders", json=body, headers=CUSTOMER)
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    bad = copy.deepcopy(ex.THRESHOLD) | {"id": "o-bad"}
    bad["tenders"][0]["amount"] = 49999
    r = shop.client.post("/v1/orders", json={"order": bad}, headers=ADMIN)
    assert (r.status_code, r.json()["code"]) == (422, "order.tenders_mismatch")
    # Amounts beyond what the store's BIGINT holds, consistent with each other: refused by
    # name (before, the database refused them, as a server error).
    huge = copy.deepcopy(ex.THRESHOLD) | {"id": "o-huge"}
    huge["lines"][0]["unit_price"] = 2**63
    huge["tenders"][0]["amount"] += 2**63 - 40000
    r = shop.client.post("/v1/orders", json={"order": huge}, headers=ADMIN)
    assert (r.status_code, r.json()["code"]) == (422, "order.invalid")
    assert r.json()["field"] == "order.lines[0].unit_price"
    assert shop.client.get("/v1/orders/o-huge", headers=ADMIN).status_code == 404


def test_merchant_sees_only_its_own_lines_and_no_tenders(shop: Shop) -> None:
    mine = shop.client.get("/v1/orders/o-mixed", headers=MERCHANT_2).json()
    assert [x["line_id"] for x in mine["lines"]] == ["B1"]
    assert mine["tenders"] == []
    assert [
        x["line_id"] for x in shop.client.get("/v1/orders/o-mixed", headers=AGENT).json()["lines"]
    ] == ["A1", "B1"]
    none = shop.client.get("/v1/orders/o-mixed", headers=MERCHANT_3)
    assert (none.status_code, none.json()["code"]) == (404, "order.not_found")
    opened = shop.open("o-mixed", "A1", "B1")
    seen = shop.client.get(f"/v1/cases/{opened['id']}", headers=MERCHANT_2).json()
    assert seen["lines"] == [{"line_id": "B1", "quantity": 1}]
    assert seen["allowed_actions"] == []  # the case has m-1's lines too
    assert seen["risk"] is None
    listed = shop.client.get("/v1/cases", headers=MERCHANT_2).json()["items"]
    assert [c["id"] for c in listed] == [opened["id"]]
    assert shop.client.get("/v1/cases", headers=MERCHANT_3).json() == {
        "items": [],
        "next_cursor": None,
    }
    r = shop.act(opened["id"], "approve", MERCHANT_2)
    assert (r.status_code, r.json()["code"]) == (403, "case.not_your_lines")


# -- preview and the return journey --------------------------------------------------------------


def test_preview_of_500_minus_100_refunding_y_moves_10000_and_writes_nothing(shop: Shop) -> None:
    before = snapshot(shop.engine)
    r = shop.client.post(
        "/v1/orders/o-500-100/refund-preview",
        json={
            "lines": [{"line_id": "Y", "quantity": 1}],
            "reason": "changed_mind",
            "kind": "return_and_refund",
        },
        headers=CUSTOMER,
    )
    assert r.status_code == 200
    plan = r.json()
    assert (plan["schema"], plan["status"], plan["order_id"]) == (
        "refundry.plan/1",
        "ready",
        "o-500-100",
    )
    assert plan["amount"] == {
        "goods": 16667,
        "give_backs": 0,
        "shipping": 0,
        "deductions": 6667,
        "carry": 0,
        "rounding": 0,
        "total": 10000,
    }
    assert [(t["tender_id"], t["amount"]) for t in plan["tenders"]] == [("T1", 10000)]
    assert [(d["kind"], d["ref"], d["amount"]) for d in plan["deductions"]] == [
        ("discount_clawback", "ADJ-T", 6667)
    ]
    assert plan["request"]["return_method"] == "self_ship"
    assert snapshot(shop.engine) == before
    merchant = shop.client.post(
        "/v1/orders/o-500-100/refund-preview",
        json={
            "lines": [{"line_id": "Y", "quantity": 1}],
            "reason": "changed_mind",
            "kind": "return_and_refund",
        },
        headers=MERCHANT_1,
    )
    assert (merchant.status_code, merchant.json()["code"]) == (403, "auth.forbidden")


def test_full_return_journey_over_http_ends_refunding_with_10000_back(shop: Shop) -> None:
    opened = shop.open("o-500-100", "Y", description="too big", evidence=["file:photo-1"])
    case_id = opened["id"]
    assert case_id.startswith("cs_")
    assert {
        k: opened[k] for k in ("order_id", "state", "kind", "reason", "amount", "currency")
    } == {
        "order_id": "o-500-100",
        "state": "under_review",
        "kind": "return_and_refund",
        "reason": "changed_mind",
        "amount": cny(10000),
        "currency": "CNY",
    }
    assert (opened["lines"], opened["evidence"], opened["description"]) == (
        [{"line_id": "Y", "quantity": 1}],
        ["file:photo-1"],
        "too big",
    )
    assert (opened["risk"], opened["allowed_actions"]) == (None, ["cancel"])
    assert opened["created_at"] == opened["updated_at"] == "2026-11-24T04:00:00Z"
    as_agent = shop.client.get(f"/v1/cases/{case_id}", headers=AGENT).json()
    assert as_agent["risk"] == {"decision": "approve", "reasons": [], "not_applied": []}
    assert as_agent["allowed_actions"] == [
        "approve",
        "reject",
        "cancel",
        "escalate",
        "note",
        "claim",
        "assign",
    ]

    shop.clock.advance(timedelta(hours=1))
    approved = shop.act(case_id, "approve", AGENT, {"comment": "ok"}).json()
    assert approved["state"] == "awaiting_return"
    assert approved["rma"] == "RMA-" + case_id.removeprefix("cs_")[:12].upper()
    assert approved["return_address"] == RETURNS_ADDRESS
    assert approved["shipment"] == {
        "service": "self_ship",
        "payer": "customer",
        "status": "customer_ships",
        "carrier": None,
        "tracking_number": None,
        "cost": None,
        "label": None,
    }
    assert approved["review"] == {
        "decision": "approve",
        "rule": "agent",
        "explain": "ok",
        "by": "agent:li",
    }
    assert approved["updated_at"] == "2026-11-24T05:00:00Z"
    # for the agent: the transitions, and the desk's own acts on any case
    assert approved["allowed_actions"] == ["cancel", "ship", "note", "claim", "assign"]
    shipped = shop.act(case_id, "ship", CUSTOMER, {"tracking_number": "SF1001"}).json()
    assert (shipped["state"], shipped["tracking_number"], shipped["allowed_actions"]) == (
        "return_in_transit",
        "SF1001",
        [],
    )
    received = shop.act(case_id, "receive", MERCHANT_1).json()
    assert (received["state"], received["allowed_actions"]) == ("received", ["inspect"])
    early = shop.act(case_id, "ship", CUSTOMER, {"tracking_number": "SF1002"})
    assert (early.status_code, early.json()["code"], early.json()["state"]) == (
        409,
        "case.illegal_transition",
        "received",
    )
    inspected = shop.act(case_id, "inspect", MERCHANT_1, {"result": "pass"}).json()
    assert inspected["state"] == "refunding"
    assert inspected["inspection"] == {
        "result": "pass",
        "accepted": [{"line_id": "Y", "quantity": 1}],
        "reason": "",
        "disposition": {"Y": "resellable"},  # the default when the merchant names none
    }
    assert inspected["refund_id"] is not None
    order = shop.client.get("/v1/orders/o-500-100", headers=CUSTOMER).json()
    assert [(x["line_id"], x["refunded_qty"]) for x in order["lines"]] == [("X", 0), ("Y", 1)]
    assert [(t["tender_id"], t["refunded"]) for t in order["tenders"]] == [
        ("T1", {"amount": 10000, "currency": "CNY"})
    ]
    assert [(c["id"], c["state"], c["amount"]) for c in order["cases"]] == [
        (case_id, "refunding", {"amount": 10000, "currency": "CNY"})
    ]
    rated = shop.act(case_id, "rate", CUSTOMER, {"rating": 5})
    assert (rated.status_code, rated.json()["code"]) == (422, "case.not_completed")


def test_cursor_pagination_gives_three_exact_pages_newest_first(shop: Shop) -> None:
    made: list[tuple[datetime, str]] = []
    for minutes in (0, 1, 1, 2, 3):  # two cases share a second: the id breaks the tie
        shop.clock.advance(timedelta(minutes=minutes) - (shop.clock() - NOW))
        case = shop.open("o-multi", "P")
        made.append((shop.clock(), case["id"]))
    expected = [cid for _, cid in sorted(made, reverse=True)]
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "order_id": "o-multi"}
        if cursor:
            params["cursor"] = cursor
        page = shop.client.get("/v1/cases", params=params, headers=AGENT).json()
        pages.append([c["id"] for c in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [expected[0:2], expected[2:4], expected[4:5]]
    mine = shop.client.get("/v1/cases", params={"limit": 100}, headers=CUSTOMER).json()
    assert ([c["id"] for c in mine["items"]], mine["next_cursor"]) == (expected, None)
    assert shop.client.get("/v1/cases", headers=CUSTOMER_B).json()["items"] == []
    assert (
        shop.client.get("/v1/cases", params={"kind": "refund_only"}, headers=AGENT).json()["items"]
        == []
    )
    assert (
        len(
            shop.client.get("/v1/cases", params={"state": "under_review"}, headers=AGENT).json()[
                "items"
            ]
        )
        == 5
    )
    bad = shop.client.get("/v1/cases", params={"cursor": "not-a-cursor"}, headers=AGENT)
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (
        422,
        "request.invalid",
        "cursor",
    )
    too_many = shop.client.get("/v1/cases", params={"limit": 101}, headers=AGENT)
    assert too_many.status_code == 422


# -- isolation -----------------------------------------------------------------------------------


TRANSITIONS = [
    ("approve", {}),
    ("reject", {"comment": "no"}),
    ("cancel", {}),
    ("ship", {"tracking_number": "SF9"}),
    ("receive", {}),
    ("inspect", {"result": "pass"}),
    ("resolve", {"resolution": "waiver", "comment": "x"}),
    ("rate", {"rating": 5}),
]


def test_customer_b_gets_404_on_a_s_order_case_preview_and_transitions_and_nothing_changes(
    shop: Shop,
) -> None:
    case_id = shop.open("o-500-100", "Y")["id"]
    before = snapshot(shop.engine)
    answers = [
        shop.client.get("/v1/orders/o-500-100", headers=CUSTOMER_B),
        shop.client.get(f"/v1/cases/{case_id}", headers=CUSTOMER_B),
        shop.client.post(
            "/v1/orders/o-500-100/refund-preview",
            json={
                "lines": [{"line_id": "Y", "quantity": 1}],
                "reason": "changed_mind",
                "kind": "refund_only",
            },
            headers=CUSTOMER_B,
        ),
        shop.client.post("/v1/cases", json=case_body("o-500-100", "X"), headers=CUSTOMER_B),
        *(shop.act(case_id, action, CUSTOMER_B, body) for action, body in TRANSITIONS),
    ]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [
        (404, "order.not_found"),
        (404, "case.not_found"),
        (404, "order.not_found"),
        (404, "order.not_found"),
    ] + [(404, "case.not_found")] * len(TRANSITIONS)
    assert all(r.headers["content-type"] == "application/problem+json" for r in answers)
    assert shop.client.get("/v1/cases", headers=CUSTOMER_B).json()["items"] == []
    assert snapshot(shop.engine) == before
    assert shop.client.get("/v1/orders/o-500-100").status_code == 401


# -- what a client may not send ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"amount": 1}, "amount"),
        ({"status": "approved"}, "status"),
        ({"state": "refunding"}, "state"),
        ({"points": 500}, "points"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_client_supplied_amount_status_or_unknown_field_is_422(
    shop: Shop, extra: dict[str, Any], field: str
) -> None:
    before = snapshot(shop.engine)
    r = shop.client.post("/v1/cases", json=case_body("o-500-100", "Y", **extra), headers=CUSTOMER)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422,
        "request.unknown_field",
        field,
    )
    assert snapshot(shop.engine) == before


def test_unknown_fields_nested_or_on_transitions_are_422_and_change_nothing(shop: Shop) -> None:
    case_id = shop.open("o-500-100", "Y")["id"]
    before = snapshot(shop.engine)
    nested = case_body("o-500-100", "X")
    nested["lines"][0]["amount"] = 1
    r = shop.client.post("/v1/cases", json=nested, headers=CUSTOMER)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422,
        "request.unknown_field",
        "lines.0.amount",
    )
    r = shop.act(case_id, "approve", AGENT, {"comment": "ok", "state": "refunding"})
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422,
        "request.unknown_field",
        "state",
    )
    r = shop.client.post(
        "/v1/orders/o-500-100/refund-preview",
        json={
            "lines": [{"line_id": "Y", "quantity": 1}],
            "reason": "changed_mind",
            "kind": "refund_only",
            "amount": 99999,
        },
        headers=CUSTOMER,
    )
    assert (r.status_code, r.json()["code"]) == (422, "request.unknown_field")
    r = shop.act(case_id, "rate", CUSTOMER, {"rating": "5"})  # a string is not a rating
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422,
        "request.invalid",
        "rating",
    )
    assert snapshot(shop.engine) == before


# -- rate limit ----------------------------------------------------------------------------------


def test_case_creation_rate_limit_is_429_with_retry_after_until_the_window_moves(
    make_shop: Callable[..., Shop],
) -> None:
    shop = make_shop(case_rate_limit=2, case_rate_window_seconds=600)
    shop.ingest(MULTI)
    shop.open("o-multi", "P")
    shop.clock.advance(timedelta(seconds=60))
    shop.open("o-multi", "P")
    shop.clock.advance(timedelta(seconds=60))
    before = snapshot(shop.engine)
    r = shop.client.post("/v1/cases", json=case_body("o-multi", "P"), headers=CUSTOMER)
    assert (r.status_code, r.json()["code"], r.headers["retry-after"]) == (
        429,
        "rate.limited",
        "480",  # the first case leaves the 600-second window 480 seconds from now
    )
    assert snapshot(shop.engine) == before
    shop.clock.advance(timedelta(seconds=479))
    r = shop.client.post("/v1/cases", json=case_body("o-multi", "P"), headers=CUSTOMER)
    assert (r.status_code, r.headers["retry-after"]) == (429, "1")
    shop.clock.advance(timedelta(seconds=1))
    assert shop.open("o-multi", "P")["state"] == "under_review"
    agent = shop.client.post("/v1/cases", json=case_body("o-multi", "P"), headers=AGENT)
    assert agent.status_code == 201  # staff opening for the customer are not throttled


# -- one-time codes ------------------------------------------------------------------------------


def test_case_above_the_code_amount_needs_the_code_texted_to_the_customer(shop: Shop) -> None:
    with shop.engine.begin() as conn:
        conn.execute(insert(customer_contacts).values(customer_id=ALICE, phone=ALICE_PHONE))
    body = case_body("o-500-100", "X")  # 333.33 - 33.33 clawed back = 300.00 > 200.00
    before = snapshot(shop.engine)
    r = shop.client.post("/v1/cases", json=body, headers=CUSTOMER)
    assert (r.status_code, r.json()["code"]) == (422, "identity.code_required")
    assert snapshot(shop.engine) == before

    issued = shop.client.post(
        "/v1/identity/codes", json={"purpose": "case.submit"}, headers=CUSTOMER
    )
    assert issued.status_code == 202
    code_id = issued.json()["code_id"]
    assert issued.json() == {"code_id": code_id, "expires_in_seconds": 300}
    [sms] = shop.sms.sent
    assert (sms.phone, sms.key) == (ALICE_PHONE, code_id)
    [code] = re.findall(r"(?<!\d)\d{6}(?!\d)", sms.text)
    assert code not in issued.text

    wrong = "000000" if code != "000000" else "111111"
    r = shop.client.post(
        "/v1/cases", json={**body, "otp": {"code_id": code_id, "code": wrong}}, headers=CUSTOMER
    )
    assert (r.status_code, r.json()["code"]) == (422, "identity.code_invalid")
    r = shop.client.post(
        "/v1/cases", json={**body, "otp": {"code_id": code_id, "code": code}}, headers=CUSTOMER
    )
    opened = (r.status_code, r.json()["state"], r.json()["amount"]["amount"])
    assert opened == (201, "under_review", 30000)
    again = shop.client.post(
        "/v1/cases",
        json={**body, "otp": {"code_id": code_id, "code": code}},
        headers=CUSTOMER,
    )
    # the units are held by the case just opened: refused for that before the code is spent
    assert (again.status_code, again.json()["code"]) == (409, "case.units_unavailable")
    soon = shop.client.post("/v1/identity/codes", json={"purpose": "case.submit"}, headers=CUSTOMER)
    assert (soon.status_code, soon.json()["code"]) == (429, "identity.resend_too_soon")
    assert soon.headers["Retry-After"] == "60" and len(shop.sms.sent) == 1

    no_phone = shop.client.post(
        "/v1/identity/codes", json={"purpose": "case.submit"}, headers=CUSTOMER_B
    )
    assert (no_phone.status_code, no_phone.json()["code"]) == (422, "identity.no_phone")
    merchant = shop.client.post(
        "/v1/identity/codes", json={"purpose": "case.submit"}, headers=MERCHANT_1
    )
    assert (merchant.status_code, merchant.json()["code"]) == (403, "auth.forbidden")
    other = shop.client.post("/v1/identity/codes", json={"purpose": "login"}, headers=CUSTOMER)
    assert (other.status_code, other.json()["code"]) == (422, "request.invalid")


def test_the_request_id_reaches_the_outbox_messages_the_request_wrote(shop: Shop) -> None:
    """A gateway call or a message can be traced to the HTTP request that caused it."""
    r = shop.client.post(
        "/v1/cases",
        json=case_body(ex.THRESHOLD["id"], "Y", reason="quality_issue"),
        headers={**CUSTOMER, "X-Request-Id": "shop-req-7"},
    )
    assert r.status_code == 201, r.json()
    assert r.headers["X-Request-Id"] == "shop-req-7"
    with shop.engine.connect() as conn:
        payloads = [json.loads(p) for (p,) in conn.execute(select(outbox.c.payload))]
    mine = [p for p in payloads if p.get("case_id") == r.json()["id"]]
    assert mine, payloads
    assert {p["request_id"] for p in mine} == {"shop-req-7"}
