"""The desk's acts on a case over real HTTP (issue 12 point 2): a uvicorn process on SQLite and
PostgreSQL, production settings, a policy with no review or risk rule (every case waits for an
agent) and 极速退款 on.

An agent claims a case, writes a note, approves it; the gateway's signed webhook says the card
refused the refund; the case offers (and the queue suggests) the two remedies, and the money
goes to the wallet, once, whatever the retries. A case is escalated; an express refund's goods
fail inspection and the debt is settled over HTTP. The customer never sees the desk's notes or
who holds the case, and may take none of the desk's acts. A replayed 201 answers with the first
answer's Location.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundry.adapters.gateway import GatewayEvent, event_to_body
from refundry.adapters.webhook_signing import SIGNATURE_HEADER, sign_webhook
from refundry.demo import worked_examples as ex
from tests.api.test_real_server import ADMIN, AGENT, MERCHANT, SECRET, Server, serve_on_backend

POLICY = """
[review]
rules = []

[risk]
rules = []
"""
PRICE = 5000  # 50.00


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_on_backend(request, tmp_path_factory, policy_text=POLICY)


def _ingest(server: Server, name: str) -> tuple[tuple[str, str], str]:
    """A paid, delivered order of 50.00 of a customer whose account is old enough for
    极速退款; returns the customer (as a caller) and the order's id."""
    customer_id, order_id = f"c-{name}", f"o-{name}"
    order = ex.order(order_id, [ex.line("A", PRICE)], PRICE, customer_id=customer_id)
    opened = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    doc = {"order": order, "customer": {"account_created_at": opened}}
    server.call("POST", "/v1/orders", ADMIN, doc, status=201)
    return ("customer", customer_id), order_id


def _open(server: Server, customer: tuple[str, str], order_id: str, kind: str) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "lines": [{"line_id": "A", "quantity": 1}],
        "reason": "quality_issue",
        "kind": kind,
    }
    case: dict[str, Any] = server.call("POST", "/v1/cases", customer, body, status=201)
    assert case["state"] == "under_review", case
    return case


def _post(
    server: Server, path: str, who: tuple[str, str], body: Any, key: str | None = None
) -> Any:
    headers = server.token(*who)
    if key is not None:
        headers["Idempotency-Key"] = key
    return server.http.post(path, headers=headers, json=body)


def card_refused_body(refund_id: str) -> bytes:
    """The gateway's webhook body: the card issuer refused the refund of tender T1."""
    event = GatewayEvent(
        event_id=f"evt-{refund_id}",
        type="refund.failed",
        gateway_refund_id=f"gr-{refund_id}",
        idempotency_key=f"{refund_id}:T1",
        amount=PRICE,
        currency="CNY",
        code="card_closed",
        occurred_at=datetime.now(UTC),
    )
    return event_to_body(event)


def _card_refused(server: Server, refund_id: str) -> None:
    """The gateway's signed webhook: the card issuer refused the refund of tender T1."""
    body = card_refused_body(refund_id)
    stamp = sign_webhook(SECRET + "-gateway-webhook", datetime.now(UTC), body)
    r = server.http.post(
        "/v1/webhooks/gateway",
        content=body,
        headers={SIGNATURE_HEADER: stamp, "content-type": "application/json"},
    )
    assert (r.status_code, r.json()) == (200, {"outcome": "applied"}), r.text


def test_a_refused_refund_goes_to_the_wallet_once_with_the_desk_on_the_timeline(
    server: Server,
) -> None:
    customer, order_id = _ingest(server, "desk-wallet")
    case = _open(server, customer, order_id, "refund_only")
    path = f"/v1/cases/{case['id']}"
    assert case["deadlines"][0]["timer"] == "merchant_silent"
    assert set(case["allowed_actions"]) == {"cancel"}  # the customer's own only
    claimed = server.call("POST", f"{path}/claim", AGENT, {})
    assert claimed["assignee"] == "agent:li"
    noted = server.call("POST", f"{path}/note", AGENT, {"text": "called the customer: note-77"})
    (note,) = [e for e in noted["timeline"] if e["kind"] == "note_added"]
    assert (note["by"], note["text"]) == ("agent:li", "called the customer: note-77")
    approved = server.call("POST", f"{path}/approve", AGENT, {"comment": "ok"})
    assert approved["state"] == "refunding"
    (refund,) = approved["refunds"]
    assert (refund["id"], refund["status"], refund["amount"]) == (
        approved["refund_id"],
        "pending",
        {"amount": PRICE, "currency": "CNY"},
    )
    _card_refused(server, refund["id"])
    failed = server.call("GET", path, AGENT)
    assert failed["state"] == "refund_failed"
    assert {"retry_refund", "refund_to_wallet"} <= set(failed["allowed_actions"])
    queue = server.call("GET", "/v1/agent/queue?limit=100", AGENT)["items"]
    (item,) = [i for i in queue if i["case_id"] == case["id"]]
    assert item["suggested_actions"] == ["retry_refund", "refund_to_wallet"]
    # The customer may not move its own money; nothing of the desk shows to it.
    refused = _post(server, f"{path}/refund-to-wallet", customer, {"tender_id": "T1"})
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    mine = server.call("GET", path, customer)
    assert mine["assignee"] is None and "note-77" not in str(mine)
    assert {e["kind"] for e in mine["timeline"]} == {"transition"}
    assert {e["by"] for e in mine["timeline"]} <= {"customer", "agent", "system"}
    # To the wallet, with a key: the retry with the same key is the same answer, not twice.
    body = {"tender_id": "T1", "reason": "card closed"}
    first = _post(server, f"{path}/refund-to-wallet", AGENT, body, key="wallet-1")
    assert first.status_code == 200, first.text
    again = _post(server, f"{path}/refund-to-wallet", AGENT, body, key="wallet-1")
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (200, "true")
    assert again.json() == first.json()
    assert first.json()["state"] == "refunded"
    assert [r["status"] for r in first.json()["refunds"]] == ["succeeded"]
    other_key = _post(server, f"{path}/refund-to-wallet", AGENT, body, key="wallet-2")
    assert (other_key.status_code, other_key.json()["code"]) == (409, "refund.not_failed")
    tenders = server.call("GET", f"/v1/refunds/{refund['id']}", AGENT)["tenders"]
    assert [(t["tender_id"], t["status"]) for t in tenders] == [("T1", "to_wallet")]


def test_an_agent_escalates_a_case_to_manual_review(server: Server) -> None:
    customer, order_id = _ingest(server, "desk-escalate")
    case = _open(server, customer, order_id, "return_and_refund")
    path = f"/v1/cases/{case['id']}"
    blank = _post(server, f"{path}/escalate", AGENT, {"comment": " "})
    assert blank.status_code == 422, blank.text
    held = server.call("POST", f"{path}/escalate", AGENT, {"comment": "photos look staged"})
    assert (held["state"], held["deadlines"]) == ("needs_manual_review", [])
    last = held["timeline"][-1]
    assert (last["action"], last["by"], last["detail"]["comment"]) == (
        "escalate",
        "agent:li",
        "photos look staged",
    )
    assert {"resolve", "approve", "reject"} <= set(held["allowed_actions"])
    assert server.call("GET", path, MERCHANT)["allowed_actions"] == []  # held: the agents'
    unknown = _post(server, f"{path}/assign", ADMIN, {"agent_id": "wang"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "case.assignee_unknown")
    assert server.call("GET", path, AGENT)["assignee"] is None  # nothing changed
    command = [sys.executable, "-m", "refundry", "user", "add", "agent", "wang"]
    added = subprocess.run(
        [*command, "--password-stdin", "--url", server.database],
        input="correct horse battery staple\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    reassigned = server.call("POST", f"{path}/assign", ADMIN, {"agent_id": "wang"})
    assert reassigned["assignee"] == "agent:wang"
    taken = _post(server, f"{path}/claim", AGENT, {})
    assert (taken.status_code, taken.json()["code"]) == (409, "case.already_claimed")


def test_an_express_refund_debt_is_recovered_and_written_off(server: Server) -> None:
    customer, order_id = _ingest(server, "desk-debt")
    case = _open(server, customer, order_id, "return_and_refund")
    path = f"/v1/cases/{case['id']}"
    approved = server.call("POST", f"{path}/approve", AGENT, {"comment": "ok"})
    assert (approved["state"], approved["express"]) == ("awaiting_return", True)
    server.call("POST", f"{path}/ship", customer, {"tracking_number": "SF1234567890"})
    server.call("POST", f"{path}/receive", MERCHANT, {})
    failed = server.call("POST", f"{path}/inspect", MERCHANT, {"result": "fail", "reason": "used"})
    assert (failed["state"], failed["debt"]) == (
        "rejected_after_inspection",
        {"amount": PRICE, "currency": "CNY"},
    )
    assert failed["allowed_actions"] == []  # the merchant's answer: the debt is the desk's
    owed = server.call("GET", path, AGENT)
    assert {"recover_debt", "write_off_debt"} <= set(owed["allowed_actions"])
    money = {"amount": 2000, "currency": "CNY"}
    for who in (customer, MERCHANT):
        refused = _post(server, f"{path}/write-off-debt", who, {"amount": money, "comment": "x"})
        assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    too_much = _post(
        server,
        f"{path}/recover-debt",
        AGENT,
        {
            "amount": {"amount": PRICE + 1, "currency": "CNY"},
            "method": "external",
            "reference": "b",
        },
    )
    assert (too_much.status_code, too_much.json()["code"], too_much.json()["field"]) == (
        422,
        "case.debt_amount_invalid",
        "amount",
    )
    written = server.call(
        "POST", f"{path}/write-off-debt", AGENT, {"amount": money, "comment": "goodwill"}
    )
    assert written["debt"] == {"amount": PRICE - 2000, "currency": "CNY"}
    recovered = server.call(
        "POST",
        f"{path}/recover-debt",
        AGENT,
        {"amount": {"amount": 3000, "currency": "CNY"}, "method": "external", "reference": "bank"},
    )
    assert recovered["debt"] == {"amount": 0, "currency": "CNY"}
    assert not {"recover_debt", "write_off_debt"} & set(recovered["allowed_actions"])
    records = [
        (e["kind"], e["detail"]["amount"])
        for e in recovered["timeline"]
        if e["kind"].startswith("debt_")
    ]
    assert records == [("debt_written_off", 2000), ("debt_recovered", 3000)]


def test_a_replayed_201_carries_the_first_answers_location(server: Server) -> None:
    customer, order_id = _ingest(server, "desk-location")
    body = {
        "order_id": order_id,
        "lines": [{"line_id": "A", "quantity": 1}],
        "reason": "quality_issue",
        "kind": "refund_only",
    }
    first = _post(server, "/v1/cases", customer, body, key="open-1")
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/v1/cases/{first.json()['id']}"
    again = _post(server, "/v1/cases", customer, body, key="open-1")
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
    assert again.headers.get("location") == first.headers["location"]
    assert again.json()["id"] == first.json()["id"]
