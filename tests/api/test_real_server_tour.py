"""Every operation of the OpenAPI document answers over a real server (issue 12 point 6): one
uvicorn process per backend (SQLite and PostgreSQL), production settings (every secret set,
every adapter named), and a shop's day driven through it with httpx — orders ingested and
moved, refunds applied from previews, cases through the desk's acts, the carrier's and the
gateway's signed webhooks, the customer's reads and passkeys, the shop's webhook endpoints,
a bulk refund, a revoked token — with ``refundry worker --once`` and ``refundry user add`` run
beside the server as an operator would.

Each call is recorded by the operation it reached (its method and path template) when it
answered 2xx; the last assertion compares that set with the server's own ``/openapi.json``, so
an endpoint added without a call here fails this test. What each answer means is asserted by
the modules that own it (test_real_server*, test_refunds, test_authorization, ...): here, that
every one of them works outside the TestClient, on both databases.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundry.adapters.logistics import TrackingEvent
from refundry.adapters.logistics import event_to_body as tracking_body
from refundry.adapters.webhook_signing import SIGNATURE_HEADER, sign_webhook
from refundry.api.auth import issue_token
from refundry.demo import worked_examples as ex
from tests.api.test_real_server import SECRET, Server, serve_on_backend
from tests.api.test_real_server_case_desk import card_refused_body
from tests.photo_files import png
from tests.soft_authenticator import SoftPasskey

POLICY = """
[review]
rules = []

[risk]
rules = []
"""
ORIGIN = "http://localhost:8000"
PASSKEYS = {
    "REFUNDRY_WEBAUTHN_RP_ID": "localhost",
    "REFUNDRY_WEBAUTHN_ORIGINS": f'["{ORIGIN}"]',
}
PRICE = 5000  # 50.00
ADMIN = ("admin", "shop-backend")
AGENT = ("agent", "li")
MERCHANT = ("merchant", "m-1")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    photos = {"REFUNDRY_PHOTO_DIR": str(tmp_path_factory.mktemp("photos"))}
    yield from serve_on_backend(
        request, tmp_path_factory, policy_text=POLICY, extra_env=PASSKEYS | photos
    )


class Tour:
    """Calls the server and records the operations that answered 2xx."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.reached: set[tuple[str, str]] = set()
        doc = server.http.get("/openapi.json").json()
        self.operations = {
            (method.upper(), path) for path, ops in doc["paths"].items() for method in ops
        }
        self._patterns = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), method, path)
            for method, path in self.operations
        ]

    def raw(
        self,
        method: str,
        path: str,
        who: tuple[str, str] | None,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        files: dict[str, Any] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if who is not None:
            sent.update(self.server.token(*who))
        if key is not None:
            sent["Idempotency-Key"] = key
        r = self.server.http.request(
            method,
            path,
            headers=sent,
            json=None if content or files else body,
            content=content,
            files=files,
        )
        if 200 <= r.status_code < 300:
            bare = path.split("?", 1)[0]
            for pattern, m, template in self._patterns:
                if m == method and pattern.match(bare):
                    self.reached.add((m, template))
        return r

    def call(self, method: str, path: str, who: tuple[str, str] | None, body: Any = None,
             *, status: int = 200, key: str | None = None) -> Any:  # fmt: skip
        r = self.raw(method, path, who, body, key=key)
        assert r.status_code == status, f"{method} {path} as {who}: {r.status_code} {r.text}"
        return r.json() if r.headers.get("content-type", "").endswith("json") else r.text

    def cli(self, *args: str, stdin: str = "") -> str:
        """``refundry ARGS`` beside the server, with its environment."""
        done = subprocess.run(
            [sys.executable, "-m", "refundry", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.server.env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"refundry {' '.join(args)}: {done.stderr}"
        return done.stdout

    def ingest(self, name: str, *, status: str = "delivered") -> tuple[tuple[str, str], str]:
        """A paid order of 50.00 (one line of m-1) of a customer whose account is old enough
        for 极速退款; returns the customer (as a caller) and the order's id."""
        customer_id, order_id = f"c-{name}", f"o-{name}"
        order = ex.order(order_id, [ex.line("A", PRICE)], PRICE, customer_id=customer_id)
        order["status"] = status
        if status != "delivered":
            order.pop("delivered_at", None)
        opened = (datetime.now(UTC) - timedelta(days=400)).isoformat()
        doc = {"order": order, "customer": {"account_created_at": opened}}
        self.call("POST", "/v1/orders", ADMIN, doc, status=201)
        return ("customer", customer_id), order_id

    def open_case(
        self, customer: tuple[str, str], order_id: str, kind: str, **more: Any
    ) -> dict[str, Any]:
        body = {
            "order_id": order_id,
            "lines": [{"line_id": "A", "quantity": 1}],
            "reason": "quality_issue",
            "kind": kind,
            **more,
        }
        case: dict[str, Any] = self.call("POST", "/v1/cases", customer, body, status=201)
        return case

    def signed(self, path: str, body: bytes, secret: str) -> Any:
        stamp = sign_webhook(secret, datetime.now(UTC), body)
        headers = {SIGNATURE_HEADER: stamp, "content-type": "application/json"}
        r = self.raw("POST", path, None, headers=headers, content=body)
        assert r.status_code == 200, r.text
        return r.json()


def test_every_operation_answers_over_a_real_server(server: Server) -> None:
    tour = Tour(server)
    # The operator: health, readiness, metrics; an agent account for assignments.
    tour.call("GET", "/healthz", None)
    tour.cli("worker", "--once")  # ready once a worker has run
    tour.call("GET", "/readyz", None)
    tour.call("GET", "/metrics", ADMIN)
    tour.cli("user", "add", "agent", "wang", "--password-stdin", stdin=PASSWORD + "\n")

    # The shop's back end: an order moves from paid to delivered; a customer's profile and
    # ledgers; a refund applied from its preview, read and listed.
    carol, paid = tour.ingest("tour-paid", status="paid")
    for status in ("shipped", "delivered"):
        at = datetime.now(UTC).isoformat()
        tour.call("POST", f"/v1/orders/{paid}/status", ADMIN, {"status": status, "at": at})
    customer_path = f"/v1/customers/{carol[1]}"
    tour.call("PATCH", customer_path, ADMIN, {"locale": "en"})
    tour.call("GET", customer_path, ADMIN)
    adjustment = {"kind": "points", "points": 100, "source": {"type": "promotion", "id": "p-1"}}
    tour.call("POST", f"{customer_path}/adjustments", ADMIN, adjustment, key="adj-1", status=201)
    tour.call("GET", f"/v1/orders/{paid}", carol)
    ask = {"lines": [{"line_id": "A", "quantity": 1}], "reason": "quality_issue"}
    ask["kind"] = "refund_only"
    plan = tour.call("POST", f"/v1/orders/{paid}/refund-preview", AGENT, ask)
    body = {**ask, "expected_plan_hash": plan["plan_hash"]}
    refund = tour.call("POST", f"/v1/orders/{paid}/refunds", AGENT, body, key="r-1", status=201)
    tour.call("GET", f"/v1/refunds/{refund['id']}", carol)
    tour.call("GET", f"/v1/refunds?order_id={paid}", AGENT)
    tour.call("GET", f"/v1/orders/{paid}/audit", carol)

    # The desk: a claimed, noted, assigned case approved; the gateway refuses the card; the
    # money goes to the wallet. Another is retried. The worker completes the first; rated.
    dan, order = tour.ingest("tour-wallet")
    case = tour.open_case(dan, order, "refund_only")
    path = f"/v1/cases/{case['id']}"
    tour.call("GET", "/v1/cases", dan)
    tour.call("GET", path, dan)
    tour.call("POST", f"{path}/claim", AGENT, {})
    tour.call("POST", f"{path}/note", AGENT, {"text": "called the customer"})
    tour.call("POST", f"{path}/assign", ADMIN, {"agent_id": "wang"})
    tour.call("GET", "/v1/agent/queue", AGENT)
    approved = tour.call("POST", f"{path}/approve", AGENT, {"comment": "ok"})
    _card_refused(tour, approved["refund_id"])
    tender = {"tender_id": "T1", "reason": "card closed"}
    tour.call("POST", f"{path}/refund-to-wallet", AGENT, tender, key="wallet-1")
    eve, order = tour.ingest("tour-retry")
    retried = tour.open_case(eve, order, "refund_only")
    again = tour.call("POST", f"/v1/cases/{retried['id']}/approve", AGENT, {"comment": "ok"})
    _card_refused(tour, again["refund_id"])
    tour.call("POST", f"/v1/cases/{retried['id']}/retry-refund", AGENT, tender, key="retry-1")
    tour.cli("worker", "--once")
    tour.cli("worker", "--once")  # the refunds are answered, then the timers complete them
    assert tour.call("GET", path, dan)["state"] == "completed"
    tour.call("POST", f"{path}/rate", dan, {"rating": 5, "feedback": "quick"})
    tour.call("GET", f"{path}/messages", AGENT)
    inbox = tour.call("GET", "/v1/me/inbox", dan)
    tour.call("POST", f"/v1/me/inbox/{inbox['items'][0]['id']}/read", dan, {})
    for what in ("coupons", "points", "eligibility"):
        tour.call("GET", f"/v1/me/{what}", dan)

    # A return by prepaid label: the carrier's scan, receipt, an express refund whose goods
    # fail inspection, the debt partly written off and the rest recovered.
    fay, order = tour.ingest("tour-debt")
    case = tour.open_case(fay, order, "return_and_refund", return_method="prepaid_label")
    path = f"/v1/cases/{case['id']}"
    tour.call("POST", f"{path}/approve", AGENT, {"comment": "ok"})
    tour.cli("worker", "--once")  # the worker books the label with the carrier
    label = tour.call("GET", path, fay)
    scan = TrackingEvent(
        event_id=f"tev-{case['id']}",
        tracking_number=label["shipment"]["tracking_number"],
        status="in_transit",
        occurred_at=datetime.now(UTC),
        location="Hangzhou",
    )
    tour.signed("/v1/webhooks/logistics", tracking_body(scan), SECRET + "-carrier-webhook")
    assert tour.call("GET", path, fay)["state"] == "return_in_transit"  # the scan moved it
    tour.call("POST", f"{path}/receive", MERCHANT, {})
    failed = tour.call("POST", f"{path}/inspect", MERCHANT, {"result": "fail", "reason": "used"})
    assert failed["state"] == "rejected_after_inspection", failed
    # The inspection's photo, and the customer's: added as multipart, listed, read back.
    shot = png()
    for who in (MERCHANT, fay):
        added = tour.raw("POST", f"{path}/photos", who, files={"photo": ("p.png", shot)})
        assert added.status_code == 201, added.text
    photos = tour.call("GET", f"{path}/photos", fay)["items"]
    assert [p["kind"] for p in photos] == ["inspection", "customer"], photos
    got = tour.raw("GET", photos[0]["url"], AGENT)
    assert (got.status_code, got.content, got.headers["content-type"]) == (200, shot, "image/png")
    money = {"amount": 2000, "currency": "CNY"}
    tour.call("POST", f"{path}/write-off-debt", AGENT, {"amount": money, "comment": "goodwill"})
    rest = {
        "amount": {"amount": PRICE - 2000, "currency": "CNY"},
        "method": "external",
        "reference": "bank",
    }
    tour.call("POST", f"{path}/recover-debt", AGENT, rest)

    # A return the customer ships herself; cases refused, escalated and resolved, cancelled;
    # refund rights suspended and lifted.
    lou, order = tour.ingest("tour-ship")
    case = tour.open_case(lou, order, "return_and_refund")
    tour.call("POST", f"/v1/cases/{case['id']}/approve", AGENT, {"comment": "ok"})
    tracking = {"tracking_number": "SF1234567890"}
    tour.call("POST", f"/v1/cases/{case['id']}/ship", lou, tracking)
    gus, order = tour.ingest("tour-reject")
    case = tour.open_case(gus, order, "refund_only")
    tour.call("POST", f"/v1/cases/{case['id']}/reject", AGENT, {"comment": "not covered"})
    hal, order = tour.ingest("tour-escalate")
    case = tour.open_case(hal, order, "refund_only")
    tour.call("POST", f"/v1/cases/{case['id']}/escalate", AGENT, {"comment": "looks staged"})
    resolution = {"resolution": "waiver", "comment": "checked"}
    tour.call("POST", f"/v1/cases/{case['id']}/resolve", AGENT, resolution)
    ivy, order = tour.ingest("tour-cancel")
    case = tour.open_case(ivy, order, "return_and_refund")
    tour.call("POST", f"/v1/cases/{case['id']}/cancel", ivy, {})
    suspension = f"/v1/customers/{ivy[1]}/suspension"
    tour.call("POST", suspension, AGENT, {"reason": "abuse"}, status=201)
    tour.call("DELETE", suspension, AGENT, {"reason": "appeal upheld"})

    # The customer's identity: a code sent; a passkey registered, asked for, listed, removed.
    jay, order = tour.ingest("tour-passkey")
    phone = {"contact": {"phone": "+8613800000000", "channels": ["in_app", "sms"]}}
    tour.call("PATCH", f"/v1/customers/{jay[1]}", ADMIN, phone)
    tour.call("POST", "/v1/identity/codes", jay, {"purpose": "case.submit"}, status=202)
    key = SoftPasskey(rp_id="localhost", origin=ORIGIN)
    options = tour.call("POST", "/v1/identity/passkeys/registration-options", jay)
    made = {"credential": key.create(options["options"]), "name": "phone"}
    tour.call("POST", "/v1/identity/passkeys", jay, made, status=201)
    tour.call("GET", "/v1/identity/passkeys", jay)
    asked = {"order_id": order, **ask}
    tour.call("POST", "/v1/identity/passkeys/assertion-options", jay, asked)
    gone = tour.raw("DELETE", f"/v1/identity/passkeys/{key.id}", jay)
    assert gone.status_code in (200, 204), gone.text

    # The shop's webhook endpoints, every operation.
    tour.call("GET", "/v1/webhook-event-types", ADMIN)
    hook = {"url": "https://shop.example/hooks", "event_types": ["*"]}
    endpoint = tour.call("POST", "/v1/webhook-endpoints", ADMIN, hook, status=201)
    hooks = f"/v1/webhook-endpoints/{endpoint['id']}"
    tour.call("GET", "/v1/webhook-endpoints", ADMIN)
    tour.call("GET", hooks, ADMIN)
    tour.call("POST", f"{hooks}/disable", ADMIN, {})
    tour.call("POST", f"{hooks}/enable", ADMIN, {})
    tour.call("POST", f"{hooks}/rotate-secret", ADMIN, {})
    tour.call("GET", f"{hooks}/deliveries", ADMIN)
    now = datetime.now(UTC)
    window = {"since": (now - timedelta(hours=1)).isoformat(), "until": now.isoformat()}
    tour.call("POST", f"{hooks}/replay", ADMIN, window, status=202)
    assert tour.raw("DELETE", hooks, ADMIN).status_code == 204

    # A bulk refund of one order, run by the worker, with its report.
    _, order = tour.ingest("tour-bulk")
    bulk = {"selector": {"order_ids": [order]}, "reason": "quality_issue"}
    job = tour.call("POST", "/v1/bulk-refunds", ADMIN, bulk, key="bulk-1", status=202)
    tour.cli("worker", "--once")
    tour.call("GET", f"/v1/bulk-refunds/{job['id']}", ADMIN)
    tour.call("GET", f"/v1/bulk-refunds/{job['id']}/report", ADMIN)

    # A token revoked.
    leaked = issue_token(SECRET.encode(), role="agent", subject="temp", now=datetime.now(UTC))
    tour.call("POST", "/v1/admin/tokens/revoke", ADMIN, {"token": leaked, "reason": "leaked"})

    missing = sorted(tour.operations - tour.reached)
    assert not missing, f"operations no call here answered 2xx: {missing}"


def _card_refused(tour: Tour, refund_id: str) -> None:
    """The gateway's signed webhook: the card issuer refused the refund of tender T1."""
    tour.signed("/v1/webhooks/gateway", card_refused_body(refund_id), SECRET + "-gateway-webhook")
