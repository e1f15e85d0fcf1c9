"""A 极速退款 refused in part at inspection, over HTTP, on SQLite and PostgreSQL: the order, the
refund and the case show the reversal, and the refused unit can be asked for again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from refundry.adapters.clock import ManualClock
from refundry.api.app import create_app
from refundry.api.auth import issue_token
from refundry.demo import worked_examples as ex
from refundry.settings import Settings

SECRET = b"reversals-secret"
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def auth(role: str, sub: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, role=role, subject=sub, now=NOW)}


CUSTOMER, AGENT, ADMIN = auth("customer", ex.CUSTOMER), auth("agent", "li"), auth("admin", "shop")
MERCHANT = auth("merchant", "m-1")


@pytest.fixture()
def client(db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url, secret=SECRET, dev=True), clock=ManualClock(NOW))
    with TestClient(app) as c:
        yield c


def test_partial_inspection_of_an_express_refund_shows_the_reversal_everywhere(
    client: TestClient,
) -> None:
    """Issue 16's figures: 2 × 200.00 paid at approval, 1 unit accepted → debt 200.00, one unit
    refunded, one refundable again."""
    order = ex.order("o-http-express", [{**ex.line("P", 20000), "quantity": 2}], 40000)
    customer = {"account_created_at": "2024-01-01T00:00:00Z"}
    r = client.post("/v1/orders", json={"order": order, "customer": customer}, headers=ADMIN)
    assert r.status_code == 201, r.json()
    body = {
        "order_id": "o-http-express",
        "lines": [{"line_id": "P", "quantity": 2}],
        "reason": "quality_issue",
        "kind": "return_and_refund",
    }
    case = client.post("/v1/cases", json=body, headers=CUSTOMER).json()
    case_id = case["id"]

    def act(action: str, who: dict[str, str], payload: Any = None) -> dict[str, Any]:
        answer = client.post(f"/v1/cases/{case_id}/{action}", json=payload or {}, headers=who)
        assert answer.status_code == 200, answer.json()
        return dict(answer.json())

    if case["state"] == "under_review":
        case = act("approve", AGENT)
    assert (case["state"], case["express"]) == ("awaiting_return", True)
    act("ship", CUSTOMER, {"tracking_number": "SF100"})
    act("receive", AGENT)
    case = act("inspect", AGENT, {"result": "partial", "accepted": {"P": 1}})
    assert case["debt"] == {"amount": 20000, "currency": "CNY"}
    assert case["reversal"]["refused"] == {"P": 1}
    assert case["reversal"]["debt"] == {"amount": 20000, "currency": "CNY"}

    seen = client.get("/v1/orders/o-http-express", headers=CUSTOMER).json()
    assert [(x["line_id"], x["refunded_qty"]) for x in seen["lines"]] == [("P", 1)]
    assert [(x["refund_id"], x["refused"], x["debt"]) for x in seen["reversals"]] == [
        (case["refund_id"], {"P": 1}, {"amount": 20000, "currency": "CNY"})
    ]
    merchant_view = client.get("/v1/orders/o-http-express", headers=MERCHANT).json()
    assert merchant_view["reversals"] == []  # the debt is the customer's, like the tenders
    audit = client.get("/v1/orders/o-http-express/audit", headers=AGENT).json()["entries"]
    [reversed_] = [e for e in audit if e["action"] == "refund.reversed"]
    assert reversed_["data"]["tenders"]["kept"] == {"T1": 40000}
    audit = client.get("/v1/orders/o-http-express/audit", headers=MERCHANT).json()["entries"]
    [reversed_] = [e for e in audit if e["action"] == "refund.reversed"]
    assert "tenders" not in reversed_["data"]  # a merchant sees no tender, here neither
    assert reversed_["data"]["refused"] == {"P": 1}

    refund = client.get(f"/v1/refunds/{case['refund_id']}", headers=CUSTOMER).json()
    assert refund["reversal"]["refused"] == {"P": 1}
    assert refund["reversal"]["case_id"] == case_id

    body["lines"] = [{"line_id": "P", "quantity": 1}]
    again = client.post("/v1/cases", json=body, headers=CUSTOMER)
    assert again.status_code == 201, again.json()
