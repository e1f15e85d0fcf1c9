"""SPEC §3's worked examples over real HTTP: a uvicorn process on a loopback port, on SQLite
and on PostgreSQL, driven with httpx.

The server is ``python -m uvicorn --factory refundry.api.serve:app_factory``, configured the
way an operator would: REFUNDRY_DATABASE_URL (a migrated database), REFUNDRY_SECRET and
REFUNDRY_POLICY — a policy file with no automatic review rule, no risk rule and no 极速退款,
so every case waits for an agent and every step is an HTTP call. Each example is ingested with
``POST /v1/orders`` (admin, with the customer block it needs, each for its own customer),
previewed with ``POST /v1/orders/{id}/refund-preview`` against SPEC's literal figures, and the
sequential examples are driven through cases to ``refunding`` before the next step's preview.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from refundry.api.auth import issue_token
from refundry.demo import worked_examples as ex
from refundry.store.migrate import upgrade
from tests.api.conftest import production_env
from tests.tools import serving

SECRET = "real-server-secret"
POLICY = """
[refund]

[review]
rules = []

[risk]
rules = []

[express]
enabled = false
"""
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    http: httpx.Client
    log: Path
    database: str  # the server's database URL (for a command run beside it: refundry user add)
    env: dict[str, str]  # the server's environment (a worker or a command run beside it)

    def token(self, role: str, subject: str) -> dict[str, str]:
        token = issue_token(SECRET.encode(), role=role, subject=subject, now=datetime.now(UTC))
        return {"Authorization": f"Bearer {token}"}

    def call(
        self, method: str, path: str, who: tuple[str, str], body: Any = None, status: int = 200
    ) -> Any:
        r = self.http.request(method, path, headers=self.token(*who), json=body)
        assert r.status_code == status, f"{method} {path} as {who}: {r.status_code} {r.text}"
        return r.json()


def _start(
    url: str, tmp: Path, policy_text: str | None = POLICY, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A server on ``url``; ``policy_text`` None runs the default policy (no policy file)."""
    upgrade(url)
    port = _free_port()
    env = {
        **os.environ,
        "REFUNDRY_DATABASE_URL": url,
        **production_env(SECRET),
        **(extra_env or {}),
    }
    env.pop("REFUNDRY_POLICY", None)
    if policy_text is not None:
        policy = tmp / "policy.toml"
        policy.write_text(policy_text, encoding="utf-8")
        env["REFUNDRY_POLICY"] = str(policy)
    command = [sys.executable, "-m", "uvicorn", "--factory", "refundry.api.serve:app_factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log = tmp / "uvicorn.log"
    with (
        serving(command, env=env, port=port, log=log, startup_seconds=STARTUP_SECONDS) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        yield Server(base, http, log, url, env)


def serve_on_backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    policy_text: str | None = POLICY,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """A server on the backend ``request.param`` names (sqlite | postgresql: a throwaway
    database), for a module's ``server`` fixture."""
    tmp = tmp_path_factory.mktemp("server")
    if request.param == "sqlite":
        yield from _start(f"sqlite:///{tmp / 'refundry.sqlite'}", tmp, policy_text, extra_env)
        return
    from tests.conftest import _drop_pg, _fresh_pg

    url = _fresh_pg(request.getfixturevalue("pg_url"))
    try:
        yield from _start(url, tmp, policy_text, extra_env)
    finally:
        _drop_pg(url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_on_backend(request, tmp_path_factory)


ADMIN = ("admin", "shop-backend")
AGENT = ("agent", "li")
MERCHANT = ("merchant", "m-1")


def ingest(server: Server, order: dict[str, Any], customer: dict[str, Any] | None = None) -> str:
    """The example's order for a customer of its own (one refunded order is then the only one
    in that customer's history)."""
    customer_id = f"c-{order['id']}"
    doc: dict[str, Any] = {"order": {**order, "customer_id": customer_id}}
    if customer is not None:
        doc["customer"] = customer
    view = server.call("POST", "/v1/orders", ADMIN, doc, status=201)
    assert (view["id"], view["customer_id"]) == (order["id"], customer_id)
    return customer_id


def refund_request(*line_ids: str, kind: str = "refund_only", **extra: Any) -> dict[str, Any]:
    return {
        "lines": [{"line_id": lid, "quantity": 1} for lid in line_ids],
        "reason": "quality_issue",
        "kind": kind,
        **extra,
    }


def preview(server: Server, customer: str, order_id: str, *line_ids: str) -> dict[str, Any]:
    plan: dict[str, Any] = server.call(
        "POST",
        f"/v1/orders/{order_id}/refund-preview",
        ("customer", customer),
        refund_request(*line_ids),
    )
    return plan


def refund_through_a_case(server: Server, customer: str, order_id: str, line_id: str) -> Any:
    """Open a refund-only case, an agent approves it: the plan applies (``refunding``)."""
    me = ("customer", customer)
    case = server.call(
        "POST", "/v1/cases", me, {**refund_request(line_id), "order_id": order_id}, status=201
    )
    assert case["state"] == "under_review", case
    case = server.call("POST", f"/v1/cases/{case['id']}/approve", AGENT, {"comment": "checked"})
    assert case["state"] == "refunding", case
    assert case["refund_id"], case
    return case


def deductions(plan: dict[str, Any]) -> list[tuple[str, int]]:
    return [(d["kind"], d["amount"]) for d in plan["deductions"]]


def test_points_496_20_through_a_return_case(server: Server) -> None:
    customer = ingest(server, ex.POINTS, {"points_balance": 120 - 500})
    plan = preview(server, customer, "o-points", "A")
    assert plan["amount"]["total"] == 49620
    assert deductions(plan) == [("points_shortfall", 380)]
    (reversal,) = [e for e in plan["effects"] if e["type"] == "points_reverse_earned"]
    assert (reversal["points"], reversal["from_balance"], reversal["shortfall"]) == (500, 120, 380)
    # The whole return over HTTP: open, approve, ship, receive, inspect → refunding.
    me = ("customer", customer)
    body = {**refund_request("A", kind="return_and_refund"), "order_id": "o-points"}
    case = server.call("POST", "/v1/cases", me, body, status=201)
    assert (case["state"], case["amount"]["amount"]) == ("under_review", 49620)
    path = f"/v1/cases/{case['id']}"
    assert server.call("POST", f"{path}/approve", AGENT, {"comment": "ok"})["state"] == (
        "awaiting_return"
    )
    shipped = server.call("POST", f"{path}/ship", me, {"tracking_number": "SF1234567890"})
    assert shipped["state"] == "return_in_transit"
    assert server.call("POST", f"{path}/receive", MERCHANT, {})["state"] == "received"
    done = server.call("POST", f"{path}/inspect", MERCHANT, {"result": "pass"})
    assert done["state"] == "refunding" and done["refund_id"], done
    assert server.call("GET", "/v1/me/points", me)["balance"] == 0


def test_expired_coupon_270_and_a_new_30_coupon(server: Server) -> None:
    customer = ingest(server, ex.COUPON, {"coupons": ex.COUPON_SNAPSHOT["coupons"]})
    plan = preview(server, customer, "o-coupon", "A")
    assert plan["amount"]["total"] == 27000
    (reissue,) = [e for e in plan["effects"] if e["type"] == "coupon_reissue"]
    assert reissue["value"] == 3000
    case = refund_through_a_case(server, customer, "o-coupon", "A")
    coupons = server.call("GET", "/v1/me/coupons", ("customer", customer))["items"]
    by_id = {c["id"]: c for c in coupons}
    assert by_id["CP-30"]["state"] == "replaced"
    new = by_id[f"CP-30~{case['refund_id']}"]
    assert (new["state"], new["value"]["amount"], new["reissued_from"]) == (
        "available",
        3000,
        "CP-30",
    )
    valid_for = datetime.fromisoformat(new["valid_until"]) - datetime.now(UTC)
    assert timedelta(days=6, hours=23) < valid_for <= timedelta(days=7)


def test_threshold_100_then_400_through_cases(server: Server) -> None:
    customer = ingest(server, ex.THRESHOLD)
    first = preview(server, customer, "o-500-100", "Y")
    assert first["amount"]["total"] == 10000
    assert deductions(first) == [("discount_clawback", 6667)]
    refund_through_a_case(server, customer, "o-500-100", "Y")
    second = preview(server, customer, "o-500-100", "X")
    assert second["amount"]["total"] == 40000
    assert [(g["kind"], g["amount"]) for g in second["give_backs"]] == [
        ("discount_give_back", 6667)
    ]
    refund_through_a_case(server, customer, "o-500-100", "X")
    order = server.call("GET", "/v1/orders/o-500-100", ("customer", customer))
    assert {ln["line_id"]: ln["refunded_qty"] for ln in order["lines"]} == {"X": 1, "Y": 1}


def test_cashback_200_keeps_the_reward_1000_claws_200(server: Server) -> None:
    customer = ingest(server, ex.CASHBACK)
    keep = preview(server, customer, "o-1000-200", "B")
    assert (keep["amount"]["total"], deductions(keep)) == (20000, [])
    lose = preview(server, customer, "o-1000-200", "A")
    assert (lose["amount"]["total"], deductions(lose)) == (80000, [("reward_clawback", 20000)])


def test_tiered_cashback_700_then_1000_through_cases(server: Server) -> None:
    customer = ingest(server, ex.TIERED)
    first = preview(server, customer, "o-tiers", "B")
    assert (first["amount"]["total"], deductions(first)) == (70000, [("reward_clawback", 30000)])
    refund_through_a_case(server, customer, "o-tiers", "B")
    second = preview(server, customer, "o-tiers", "A")
    assert (second["amount"]["total"], deductions(second)) == (
        100000,
        [("reward_clawback", 20000)],
    )
    refund_through_a_case(server, customer, "o-tiers", "A")


def test_gift_kept_170(server: Server) -> None:
    customer = ingest(server, ex.GIFT)
    plan = preview(server, customer, "o-gift", "Y")
    assert (plan["amount"]["total"], deductions(plan)) == (17000, [("kept_gift", 3000)])


def test_another_customer_is_told_the_order_does_not_exist(server: Server) -> None:
    """The access rule holds over the wire too (and nothing about the order leaks)."""
    ingest(server, {**ex.GIFT, "id": "o-gift-private"})
    r = server.http.post(
        "/v1/orders/o-gift-private/refund-preview",
        headers=server.token("customer", "c-stranger"),
        json=refund_request("Y"),
    )
    assert (r.status_code, r.json()["code"]) == (404, "order.not_found")
    assert r.headers["content-type"] == "application/problem+json"


def test_the_shop_manages_its_webhook_endpoint_over_the_wire(server: Server) -> None:
    """Outside dev mode: https only; the secret in the 201 answer alone; the delivery log;
    an agent is refused (docs/webhooks.md)."""
    admin = ("admin", "shop-backend")
    plain = server.http.post(
        "/v1/webhook-endpoints",
        headers=server.token(*admin),
        json={"url": "http://shop.example/hooks", "event_types": ["*"]},
    )
    assert (plain.status_code, plain.json()["code"]) == (422, "webhook.url_invalid")
    inside = server.http.post(
        "/v1/webhook-endpoints",
        headers=server.token(*admin),
        json={"url": "https://10.1.2.3/hooks", "event_types": ["*"]},
    )
    assert (inside.status_code, inside.json()["code"]) == (422, "webhook.url_invalid")
    made = server.call(
        "POST",
        "/v1/webhook-endpoints",
        admin,
        {"url": "https://shop.example/hooks", "event_types": ["refund.applied"]},
        status=201,
    )
    assert made["secret"].startswith("whsec_")
    path = f"/v1/webhook-endpoints/{made['id']}"
    shown = server.call("GET", path, admin)
    assert (shown["status"], "secret" in shown) == ("enabled", False)
    assert server.call("GET", f"{path}/deliveries", admin) == {"items": [], "next_cursor": None}
    refused = server.http.get(path, headers=server.token("agent", "li"))
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    assert server.http.delete(path, headers=server.token(*admin)).status_code == 204
    assert server.http.get(path, headers=server.token(*admin)).status_code == 404
