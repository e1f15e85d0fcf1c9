"""The customer's own pages, the agent queue, suspensions, audit trails, webhooks, metrics and
running the server — over HTTP with TestClient on SQLite and PostgreSQL, plus a real uvicorn
process (HTTP and HTTPS) on a SQLite file.

The shop (``shop`` fixture): customer A (worked_examples.CUSTOMER) with the coupon, threshold,
cashback and points orders; customer B with one order. Three cases of A's:
``refunded`` (THRESHOLD line Y, refund_only, approved by the ``small_amount`` rule, its
gateway confirmation delivered through ``POST /v1/webhooks/gateway``), ``under_review``
(CASHBACK line A, no review rule) and ``refund_failed`` (the COUPON order, approved by an
agent, the card closed at the gateway).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from refundry.adapters.clock import ManualClock
from refundry.adapters.events import RecordingPublisher
from refundry.adapters.gateway import GatewayEvent, event_to_body
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.inbox import InboxNotifier
from refundry.adapters.logistics import ReturnBooking, TrackingEvent
from refundry.adapters.logistics import event_to_body as tracking_body
from refundry.adapters.webhook_signing import SIGNATURE_HEADER, sign_webhook
from refundry.api.app import create_app
from refundry.api.auth import issue_token, read_token
from refundry.api.serve import serve_command, token_command
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ExpressPolicy, ProcessPolicy
from refundry.services.cases.actions import approve
from refundry.services.cases.opening import CaseDesk, open_case
from refundry.services.cases.process import Actor, load_case
from refundry.services.cases.shipments import record_booking
from refundry.services.errors import Forbidden
from refundry.services.orders.ingest import ingest_order
from refundry.services.outbox.relay import Relay
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.engine import make_engine
from refundry.store.migrate import upgrade
from refundry.store.tables import (
    audit_log,
    gateway_calls,
    gateway_events,
    inbox_messages,
    refund_tenders,
    shipment_events,
)
from tests.api.conftest import production_env
from tests.tools import promtool

SECRET = b"me-agent-ops-secret"
WEBHOOK_SECRET = b"me-agent-ops-webhook"
START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
A, B = ex.CUSTOMER, "c-200"
AGENT = Actor("agent", "li")
NO_RULES = ProcessPolicy(review_rules=(), express=ExpressPolicy(enabled=False))


def bearer(role: str, subject: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, role=role, subject=subject, now=START)}


@dataclass
class Shop:
    client: TestClient
    engine: Engine
    clock: ManualClock
    gateway: SandboxGateway
    relay: Relay
    desk: CaseDesk  # no review rules, no 极速退款: cases wait for an agent
    refunded: str
    under_review: str
    failed: str

    def signed(self, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
        stamp = sign_webhook(WEBHOOK_SECRET, at or self.clock(), body)
        return {SIGNATURE_HEADER: stamp, "content-type": "application/json"}

    def post_gateway_event(self, event: GatewayEvent) -> None:
        body = event_to_body(event)
        r = self.client.post("/v1/webhooks/gateway", content=body, headers=self.signed(body))
        assert r.status_code == 200, r.text


def _request(order_id: str, line: str, *, reason: str, kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "order_id": order_id,
        "reason": reason,
        "kind": kind,
        "lines": [{"line_id": line, "quantity": 1}],
    }
    if kind == "return_and_refund":
        doc["return_method"] = "self_ship"
    return doc


@pytest.fixture()
def shop(db_url: str) -> Iterator[Shop]:
    engine = make_engine(db_url)
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, seed=5, confirm_after=timedelta(seconds=5))
    for doc in (ex.THRESHOLD, ex.CASHBACK, ex.POINTS):
        gateway.capture(doc["tenders"][0]["gateway_txn_id"], doc["tenders"][0]["amount"], "CNY")
    coupon_tender = ex.COUPON["tenders"][0]
    gateway.capture(
        coupon_tender["gateway_txn_id"], coupon_tender["amount"], "CNY", card_state="closed"
    )
    threshold = json.loads(json.dumps(ex.THRESHOLD))
    threshold["campaigns"][0].update(quota_per_customer=1, high_value=True)
    b_order = ex.order("o-b-1", [ex.line("A", 8000)], 8000)
    b_order["customer_id"] = B
    opening = {"points_balance": 120, "coupons": ex.COUPON_SNAPSHOT["coupons"]}
    with UnitOfWork(engine) as uow:
        for doc in (
            {"order": ex.COUPON, "customer": opening},
            threshold,
            ex.CASHBACK,
            ex.POINTS,
            {"order": b_order, "customer": {}},
        ):
            ingest_order(uow.conn, doc, policy=Policy(), now=START - timedelta(days=200))
        uow.commit()
    relay = Relay(
        engine=engine,
        gateway=gateway,
        notifier=InboxNotifier(engine),
        publisher=RecordingPublisher(),
        clock=clock,
    )
    rules_desk = CaseDesk(engine, Policy(), ProcessPolicy())
    desk = CaseDesk(engine, Policy(), NO_RULES)
    customer = Actor("customer", A)
    refunded = open_case(
        rules_desk,
        actor=customer,
        now=clock(),
        request=_request("o-500-100", "Y", reason="not_received", kind="refund_only"),
    ).case_id
    under_review = open_case(
        desk,
        actor=customer,
        now=clock(),
        request=_request("o-1000-200", "A", reason="quality_issue", kind="return_and_refund"),
    ).case_id
    failed = open_case(
        desk,
        actor=customer,
        now=clock(),
        request=_request("o-coupon", "A", reason="not_received", kind="refund_only"),
    ).case_id
    approve(desk, failed, actor=AGENT, now=clock())
    settings = Settings(
        database_url=db_url,
        secret=SECRET,
        gateway_webhook_secret=WEBHOOK_SECRET,
        carrier_webhook_secret=WEBHOOK_SECRET,
        dev=True,
    )
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        world = Shop(client, engine, clock, gateway, relay, desk, refunded, under_review, failed)
        relay.drain()
        clock.advance(timedelta(seconds=10))
        gateway.deliver_due(world.post_gateway_event)
        relay.drain()
        yield world
    engine.dispose()


def state_of(shop: Shop, case_id: str) -> str:
    with UnitOfWork(shop.engine, readonly=True) as uow:
        return str(load_case(uow.conn, case_id, AGENT).state)


def fingerprint(engine: Engine) -> tuple[Any, ...]:
    """What a webhook could change: events seen, gateway answers, tender states, audit length,
    tracking events."""
    with UnitOfWork(engine, readonly=True) as uow:
        c = uow.conn
        return (
            c.execute(select(func.count()).select_from(gateway_events)).scalar_one(),
            c.execute(select(func.count()).select_from(gateway_calls)).scalar_one(),
            sorted(c.execute(select(refund_tenders.c.refund_id, refund_tenders.c.status)).all()),
            c.execute(select(func.count()).select_from(audit_log)).scalar_one(),
            c.execute(select(func.count()).select_from(shipment_events)).scalar_one(),
        )


# -- /v1/me ------------------------------------------------------------------------------------


def test_shop_reaches_the_three_queue_states(shop: Shop) -> None:
    assert [state_of(shop, c) for c in (shop.refunded, shop.under_review, shop.failed)] == [
        "refunded",
        "under_review",
        "refund_failed",
    ]


def test_me_coupons_show_the_expired_coupon_reissued_and_nothing_of_another_customer(
    shop: Shop,
) -> None:
    mine = shop.client.get("/v1/me/coupons", headers=bearer("customer", A))
    assert mine.status_code == 200
    items = {c["id"]: c for c in mine.json()["items"]}
    assert items["CP-30"]["state"] == "replaced"
    assert items["CP-30"]["value"] == {"amount": 3000, "currency": "CNY"}
    (new,) = [c for c in items.values() if c["reissued_from"] == "CP-30"]
    assert (new["state"], new["value"]["amount"]) == ("available", 3000)
    theirs = shop.client.get("/v1/me/coupons", headers=bearer("customer", B))
    assert theirs.json() == {"items": []}
    staff = shop.client.get("/v1/me/coupons", headers=bearer("agent", "li"))
    assert (staff.status_code, staff.json()["code"]) == (403, "auth.forbidden")


def test_me_points_balance_tier_and_postings_page_by_cursor(shop: Shop) -> None:
    first = shop.client.get("/v1/me/points?limit=1", headers=bearer("customer", A)).json()
    assert (first["balance"], first["growth"], first["tier"]) == (620, 0, None)
    assert [(p["points"], p["order_id"]) for p in first["postings"]] == [(500, "o-points")]
    assert first["next_cursor"] is not None
    rest = shop.client.get(
        f"/v1/me/points?limit=10&cursor={first['next_cursor']}", headers=bearer("customer", A)
    ).json()
    assert [p["points"] for p in rest["postings"]] == [120]
    assert rest["next_cursor"] is None
    assert first["postings"][0]["memo"] != "" and rest["postings"][0]["memo"] != ""
    b = shop.client.get("/v1/me/points", headers=bearer("customer", B)).json()
    assert (b["balance"], b["postings"], b["next_cursor"]) == (0, [], None)
    bad = shop.client.get("/v1/me/points?cursor=not-a-cursor", headers=bearer("customer", A))
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (
        422,
        "request.invalid",
        "cursor",
    )


def test_me_inbox_newest_first_paginated_and_read_only_by_its_owner(shop: Shop) -> None:
    with UnitOfWork(shop.engine, readonly=True) as uow:
        ids = [
            i
            for (i,) in uow.conn.execute(
                select(inbox_messages.c.id)
                .where(inbox_messages.c.customer_id == A)
                .order_by(inbox_messages.c.id.desc())
            )
        ]
    assert len(ids) >= 3
    page = shop.client.get("/v1/me/inbox?limit=2", headers=bearer("customer", A)).json()
    assert [m["id"] for m in page["items"]] == ids[:2]
    assert page["unread"] == len(ids)
    rest = shop.client.get(
        f"/v1/me/inbox?limit=100&cursor={page['next_cursor']}", headers=bearer("customer", A)
    ).json()
    assert [m["id"] for m in rest["items"]] == ids[2:]
    assert rest["next_cursor"] is None
    shown = {m["template"]: (m["title"], m["text"]) for m in page["items"] + rest["items"]}
    assert shown["refund.refunded"] == (
        "退款已到账",
        "您的退款¥100.00已退回原支付方式，请注意查收。",
    )
    # Plan notices carry the order's currency, so every one renders.
    assert shown["discount.clawed_back"] == (
        "活动优惠已扣回",
        "退款后保留的商品不再满足“MJ-500-100”活动门槛，已从退款中扣除相应优惠¥66.67。",
    )
    stolen = shop.client.post(f"/v1/me/inbox/{ids[0]}/read", headers=bearer("customer", B))
    assert (stolen.status_code, stolen.json()["code"]) == (404, "inbox.message_not_found")
    read = shop.client.post(f"/v1/me/inbox/{ids[0]}/read", headers=bearer("customer", A))
    assert (read.status_code, read.json()["id"], read.json()["read_at"]) == (
        200,
        ids[0],
        "2026-11-24T04:00:10Z",
    )
    after = shop.client.get("/v1/me/inbox?limit=1", headers=bearer("customer", A)).json()
    assert after["unread"] == len(ids) - 1
    assert shop.client.get("/v1/me/inbox", headers=bearer("customer", B)).json() == {
        "items": [],
        "unread": 0,
        "next_cursor": None,
    }
    missing = shop.client.post("/v1/me/inbox/999999/read", headers=bearer("customer", A))
    assert missing.status_code == 404


def test_me_eligibility_shows_quota_used_then_restored_and_no_restriction(
    shop: Shop,
) -> None:
    mine = shop.client.get("/v1/me/eligibility", headers=bearer("customer", A)).json()
    # Line Y alone was refunded: X still holds the quota of the 满减 campaign.
    assert mine == {
        "campaigns": [
            {
                "campaign_id": "MJ-500-100",
                "kind": "threshold_discount",
                "high_value": True,
                "used": 1,
                "restored": 0,
            }
        ],
        "restrictions": [],
        "restricted_from": [],
        "refund_rights_suspended": False,
    }
    rest = open_case(
        shop.desk,
        actor=Actor("customer", A),
        now=shop.clock(),
        request=_request("o-500-100", "X", reason="not_received", kind="refund_only"),
    )
    approve(shop.desk, rest.case_id, actor=AGENT, now=shop.clock())  # the whole order is back
    (quota,) = shop.client.get("/v1/me/eligibility", headers=bearer("customer", A)).json()[
        "campaigns"
    ]
    assert (quota["used"], quota["restored"]) == (0, 1)
    theirs = shop.client.get("/v1/me/eligibility", headers=bearer("customer", B)).json()
    assert theirs == {
        "campaigns": [],
        "restrictions": [],
        "restricted_from": [],
        "refund_rights_suspended": False,
    }


# -- agent queue and suspension ----------------------------------------------------------------


def test_agent_queue_lists_waiting_cases_with_risk_and_review_explanations(shop: Shop) -> None:
    r = shop.client.get("/v1/agent/queue", headers=bearer("agent", "li"))
    assert r.status_code == 200
    items = {i["case_id"]: i for i in r.json()["items"]}
    assert set(items) == {shop.under_review, shop.failed}  # the refunded case does not wait
    waiting = items[shop.under_review]
    assert (waiting["state"], waiting["amount"]) == (
        "under_review",
        {"amount": waiting["amount"]["amount"], "currency": "CNY"},
    )
    assert waiting["review"] == {
        "decision": "agent",
        "rule": "default",
        "explain": "no rule decided: the case waits for an agent",
        "by": "rules",
    }
    assert waiting["risk"] == {"decision": "approve", "reasons": [], "not_applied": []}
    failed = items[shop.failed]
    assert failed["state"] == "refund_failed" and failed["failure_codes"] != []
    assert failed["why"].startswith("the gateway refused")
    first = shop.client.get("/v1/agent/queue?limit=1", headers=bearer("admin", "root")).json()
    second = shop.client.get(
        f"/v1/agent/queue?limit=1&cursor={first['next_cursor']}", headers=bearer("admin", "root")
    ).json()
    assert {first["items"][0]["case_id"], second["items"][0]["case_id"]} == set(items)
    assert second["next_cursor"] is None
    refused = shop.client.get("/v1/agent/queue", headers=bearer("customer", A))
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")


def test_suspension_is_audited_blocks_new_cases_and_is_lifted_with_a_reason(shop: Shop) -> None:
    url = f"/v1/customers/{A}/suspension"
    by_customer = shop.client.post(url, json={"reason": "x"}, headers=bearer("customer", A))
    assert by_customer.status_code == 403
    r = shop.client.post(
        url, json={"reason": "abuse of refund_only"}, headers=bearer("agent", "li")
    )
    assert (r.status_code, r.json()["suspended"], r.json()["created"]) == (201, True, True)
    again = shop.client.post(url, json={"reason": "again"}, headers=bearer("agent", "li"))
    assert (again.status_code, again.json()["created"], again.json()["restriction_ids"]) == (
        200,
        False,
        [],
    )
    with pytest.raises(Forbidden) as refused:
        open_case(
            shop.desk,
            actor=Actor("customer", A),
            now=shop.clock(),
            request=_request("o-points", "A", reason="quality_issue", kind="refund_only"),
        )
    assert refused.value.code == "case.refund_rights_suspended"
    seen = shop.client.get("/v1/me/eligibility", headers=bearer("customer", A)).json()
    assert seen["refund_rights_suspended"] is True
    assert [(x["kind"], x["rule"], x["reason"], x["until"]) for x in seen["restrictions"]] == [
        ("suspend", "agent", "abuse of refund_only", None)
    ]
    lift = shop.client.request(
        "DELETE", url, json={"reason": "customer explained"}, headers=bearer("agent", "li")
    )
    assert (lift.status_code, lift.json()["suspended"]) == (200, False)
    assert lift.json()["restriction_ids"] == r.json()["restriction_ids"]
    twice = shop.client.request("DELETE", url, json={"reason": "x"}, headers=bearer("agent", "li"))
    assert (twice.status_code, twice.json()["code"]) == (409, "risk.not_suspended")
    nobody = shop.client.post(
        "/v1/customers/c-nobody/suspension", json={"reason": "x"}, headers=bearer("agent", "li")
    )
    assert (nobody.status_code, nobody.json()["code"]) == (404, "customer.not_found")
    with UnitOfWork(shop.engine, readonly=True) as uow:
        trail = uow.conn.execute(
            select(audit_log.c.actor, audit_log.c.action, audit_log.c.data)
            .where(audit_log.c.action.in_(["risk.suspend", "risk.suspension_lifted"]))
            .order_by(audit_log.c.seq)
        ).all()
    assert [(a, act) for a, act, _ in trail] == [
        ("agent:li", "risk.suspend"),
        ("agent:li", "risk.suspension_lifted"),
    ]
    assert json.loads(trail[1][2])["reason"] == "customer explained"
    assert open_case(
        shop.desk,
        actor=Actor("customer", A),
        now=shop.clock(),
        request=_request("o-points", "A", reason="quality_issue", kind="refund_only"),
    ).state in ("under_review", "needs_manual_review")


# -- audit --------------------------------------------------------------------------------------


def test_order_audit_is_visible_to_its_parties_only_and_reports_a_broken_chain(
    shop: Shop,
) -> None:
    url = "/v1/orders/o-500-100/audit"
    mine = shop.client.get(url, headers=bearer("customer", A))
    assert mine.status_code == 200
    body = mine.json()
    actions = [e["action"] for e in body["entries"]]
    assert actions[0] == "order.ingested" and "case.opened" in actions
    assert [e["seq"] for e in body["entries"]] == sorted(e["seq"] for e in body["entries"])
    assert (body["chain_verified"], body["chain_problem"]) == (True, None)
    desk = shop.client.get(url, headers=bearer("agent", "li")).json()["entries"]
    assert shop.client.get(url, headers=bearer("admin", "root")).json()["entries"] == desk
    # The customer and the merchant see what their other views show (issue 16 point 5): the
    # desk's entries, less risk decisions for both and less tenders for the merchant.
    tender_actions = ("refund.tender", "refund.to_wallet", "effect.refund_to_tender", "gateway.")

    def without(value: Any, keys: set[str]) -> Any:
        if isinstance(value, dict):
            return {k: without(v, keys) for k, v in value.items() if k not in keys}
        if isinstance(value, list):
            return [without(v, keys) for v in value]
        return value

    risk_free = [
        {**e, "data": without(e["data"], {"risk"})}
        for e in desk
        if not e["action"].startswith("risk.")
    ]
    assert body["entries"] == risk_free
    tender_keys = {"tender_id", "tenders", "gateway_txn_id", "transaction_id", "gateway_refund_id"}
    merchant_view = [
        {**e, "data": without(e["data"], tender_keys)}
        for e in risk_free
        if not e["action"].startswith(tender_actions)
    ]
    merchant = shop.client.get(url, headers=bearer("merchant", "m-1")).json()["entries"]
    assert merchant == merchant_view
    assert len(merchant) < len(body["entries"]) <= len(desk)  # the merchant saw tenders before
    for headers in (bearer("customer", B), bearer("merchant", "m-9")):
        r = shop.client.get(url, headers=headers)
        assert (r.status_code, r.json()["code"]) == (404, "order.not_found")
    assert shop.client.get(
        "/v1/orders/o-none/audit", headers=bearer("agent", "li")
    ).status_code == (404)
    with UnitOfWork(shop.engine) as uow:
        uow.conn.execute(
            update(audit_log)
            .where(audit_log.c.chain == A, audit_log.c.seq == body["entries"][0]["seq"])
            .values(data='{"edited":true}')
        )
        uow.commit()
    broken = shop.client.get(url, headers=bearer("customer", A)).json()
    assert broken["chain_verified"] is False
    assert broken["chain_problem"].startswith(f"entry {body['entries'][0]['seq']} of chain {A!r}:")


# -- webhooks -----------------------------------------------------------------------------------


def _late_event(shop: Shop, event_id: str) -> GatewayEvent:
    with UnitOfWork(shop.engine, readonly=True) as uow:
        key = uow.conn.execute(
            select(refund_tenders.c.idempotency_key).where(refund_tenders.c.status == "succeeded")
        ).scalar_one()
    return GatewayEvent(
        event_id=event_id,
        type="refund.succeeded",
        gateway_refund_id="re_late",
        idempotency_key=str(key),
        amount=10000,
        currency="CNY",
        code=None,
        occurred_at=shop.clock(),
    )


def test_gateway_webhook_refuses_unsigned_wrong_and_stale_signatures_changing_nothing(
    shop: Shop,
) -> None:
    body = event_to_body(_late_event(shop, "evt_probe"))
    before = fingerprint(shop.engine)
    wrong = sign_webhook(b"not-the-secret", shop.clock(), body)
    stale = shop.signed(body, at=shop.clock() - timedelta(seconds=301))
    for headers in (
        {"content-type": "application/json"},
        {SIGNATURE_HEADER: wrong, "content-type": "application/json"},
        stale,
        {SIGNATURE_HEADER: "t=1,v1=", "content-type": "application/json"},
    ):
        r = shop.client.post("/v1/webhooks/gateway", content=body, headers=headers)
        assert (r.status_code, r.json()["code"]) == (401, "gateway.webhook_signature")
        assert r.headers["content-type"] == "application/problem+json"
    tampered = body.replace(b"10000", b"99999")
    r = shop.client.post("/v1/webhooks/gateway", content=tampered, headers=shop.signed(body))
    assert r.status_code == 401
    assert fingerprint(shop.engine) == before
    junk = b'{"id": "evt_x"}'
    r = shop.client.post("/v1/webhooks/gateway", content=junk, headers=shop.signed(junk))
    assert (r.status_code, r.json()["code"]) == (400, "gateway.webhook_invalid")


def test_gateway_webhook_signed_is_recorded_once_and_a_duplicate_is_harmless(shop: Shop) -> None:
    body = event_to_body(_late_event(shop, "evt_late_1"))
    first = shop.client.post("/v1/webhooks/gateway", content=body, headers=shop.signed(body))
    assert (first.status_code, first.json()) == (200, {"outcome": "ignored"})  # already final
    after_first = fingerprint(shop.engine)
    again = shop.client.post("/v1/webhooks/gateway", content=body, headers=shop.signed(body))
    assert (again.status_code, again.json()) == (200, {"outcome": "duplicate"})
    assert fingerprint(shop.engine) == after_first
    assert state_of(shop, shop.refunded) == "refunded"


def test_logistics_webhook_checks_its_signature_retries_unknown_and_moves_the_case(
    shop: Shop,
) -> None:
    event = TrackingEvent("trk_1", "SF123", "picked_up", shop.clock(), "Shenzhen")
    body = tracking_body(event)
    before = fingerprint(shop.engine)
    unsigned = shop.client.post("/v1/webhooks/logistics", content=body)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "logistics.webhook_signature")
    unknown = shop.client.post("/v1/webhooks/logistics", content=body, headers=shop.signed(body))
    assert (unknown.status_code, unknown.json()["code"]) == (409, "logistics.unknown_shipment")
    assert fingerprint(shop.engine) == before
    approve(shop.desk, shop.under_review, actor=AGENT, now=shop.clock())
    with UnitOfWork(shop.engine) as uow:
        record_booking(
            uow.conn,
            case_id=shop.under_review,
            booking=ReturnBooking("sf", "prepaid_label", "SF123", 1200),
            payer="customer",
            at=shop.clock(),
            actor="system:test",
        )
        uow.commit()
    applied = shop.client.post("/v1/webhooks/logistics", content=body, headers=shop.signed(body))
    assert (applied.status_code, applied.json()) == (200, {"outcome": "applied"})
    assert state_of(shop, shop.under_review) == "return_in_transit"
    again = shop.client.post("/v1/webhooks/logistics", content=body, headers=shop.signed(body))
    assert (again.status_code, again.json()) == (200, {"outcome": "duplicate"})


# -- metrics ------------------------------------------------------------------------------------


def test_metrics_exposition_has_exact_samples_and_needs_an_admin(shop: Shop) -> None:
    assert shop.client.get("/metrics").status_code == 401
    assert shop.client.get("/metrics", headers=bearer("agent", "li")).status_code == 403
    r = shop.client.get("/metrics", headers=bearer("admin", "prometheus"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = r.text.splitlines()
    samples = {
        line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
        for line in lines
        if line and not line.startswith("#")
    }
    for line in lines:  # every family is declared before its samples, with a known type
        if line.startswith("# TYPE"):
            assert line.split()[3] in ("gauge", "counter", "histogram", "summary")
    expected = {
        'refundry_cases{state="refunded"}': "1.0",
        'refundry_cases{state="under_review"}': "1.0",
        'refundry_cases{state="refund_failed"}': "1.0",
        'refundry_cases{state="completed"}': "0.0",
        'refundry_case_refund_seconds_bucket{le="60.0"}': "1.0",
        'refundry_case_refund_seconds_bucket{le="+Inf"}': "1.0",
        "refundry_case_refund_seconds_sum": "10.0",
        "refundry_case_refund_seconds_count": "1.0",
        # both money cases left refunding 10 s after opening: one confirmed, one refused
        'refundry_case_stage_seconds_sum{stage="refunding"}': "20.0",
        'refundry_case_stage_seconds_count{stage="refunding"}': "2.0",
        'refundry_case_stage_seconds_sum{stage="requested"}': "0.0",
        'refundry_case_stage_seconds_count{stage="requested"}': "3.0",
        'refundry_case_stage_seconds_count{stage="under_review"}': "2.0",
        "refundry_auto_approval_ratio": "0.3333333333333333",
        'refundry_clawback_minor_units_total{currency="CNY",kind="discount_clawback"}': "6667.0",
        "refundry_orders": "5.0",
        'refundry_refund_rate{reason="not_received"}': "0.4",
        'refundry_refunds_by_merchant{merchant="m-1"}': "2.0",
    }
    assert {k: samples.get(k) for k in expected} == expected
    assert "# TYPE refundry_case_refund_seconds histogram" in lines
    # the relay's health: nothing dead, no gateway error, no worker has run in this shop
    assert samples['refundry_gateway_errors_total{outcome="timeout"}'] == "0.0"
    assert not [k for k in samples if k.startswith("refundry_outbox_dead{")]
    assert "# TYPE refundry_worker_heartbeat_age_seconds gauge" in lines
    assert any(k.startswith("refundry_http_requests_total{") for k in samples)


def test_metrics_pass_promtool_check_metrics(shop: Shop) -> None:
    """Prometheus's own linter accepts the exposition (names, types, help, units)."""
    tool = promtool()
    r = shop.client.get("/metrics", headers=bearer("admin", "prometheus"))
    assert r.status_code == 200
    checked = subprocess.run(
        [tool, "check", "metrics"], input=r.content, capture_output=True, timeout=60, check=False
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


# -- the CLI commands and a real server ---------------------------------------------------------


def _cli(command: Any) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    return app


def test_token_command_prints_a_token_the_server_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFUNDRY_SECRET", "cli-secret")
    result = CliRunner().invoke(_cli(token_command), ["agent", "li", "--days", "2"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    actor = read_token(b"cli-secret", token, now=datetime.now(UTC) + timedelta(days=1))
    assert actor.tag == "agent:li"
    bad = CliRunner().invoke(_cli(token_command), ["boss", "li"])
    assert bad.exit_code == 2 and "role must be one of" in bad.stderr


def test_serve_command_refuses_several_workers_on_sqlite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REFUNDRY_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    result = CliRunner().invoke(_cli(serve_command), ["--workers", "2", "--url", url])
    assert result.exit_code == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr
    half = CliRunner().invoke(_cli(serve_command), ["--tls-cert", str(tmp_path / "c.pem")])
    assert (half.exit_code, "go together" in half.stderr) == (2, True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    url = f"sqlite:///{tmp_path / 'served.sqlite'}"
    upgrade(url)
    port = _free_port()
    env = {**os.environ, **production_env("served-secret")}
    env.pop("REFUNDRY_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "refundry.api.serve", "--port", str(port), "--url", url, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, port


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], **kwargs: Any) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url, timeout=2, **kwargs)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"server did not come up: {proc.stderr.read().decode() if proc.stderr else ''}"
                ) from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_real_server_in_a_subprocess_answers_healthz_over_http(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path)
    try:
        r = _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert (r.status_code, r.json()) == (200, {"status": "ok", "database": "sqlite"})
        token = issue_token(b"served-secret", role="customer", subject="c-1", now=datetime.now(UTC))
        me = httpx.get(
            f"http://127.0.0.1:{port}/v1/me/coupons",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert (me.status_code, me.json()) == (200, {"items": []})
    finally:
        _stop(proc)


def test_real_server_serves_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    proc, port = _serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        r = _wait_healthy(f"https://127.0.0.1:{port}/healthz", proc, verify=trusted)
        assert (r.status_code, r.json()["status"]) == (200, "ok")
        with pytest.raises(httpx.ConnectError):  # the default trust store does not know it
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5)
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP is not served there
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        _stop(proc)


def test_a_failed_refund_is_shown_failed_and_not_counted_as_refunded(shop: Shop) -> None:
    """Issue 12 point 1: the refund the gateway refused (the coupon order's closed card) is
    ``failed`` with the gateway's code and words; its case and it name each other; the order
    view counts its units and money as failed, not refunded."""
    desk = bearer("agent", "li")
    case = shop.client.get(f"/v1/cases/{shop.failed}", headers=desk).json()
    refund = shop.client.get(f"/v1/refunds/{case['refund_id']}", headers=desk).json()
    assert (refund["status"], refund["case_id"], refund["order_id"]) == (
        "failed",
        shop.failed,
        "o-coupon",
    )
    (tender,) = refund["tenders"]
    assert tender["status"] == "failed" and tender["failure_code"]
    assert (refund["failure_code"], refund["failure_message"]) == (
        tender["failure_code"],
        tender["failure_message"],
    )
    assert tender["gateway_txn_id"] == ex.COUPON["tenders"][0]["gateway_txn_id"]
    order = shop.client.get("/v1/orders/o-coupon", headers=desk).json()
    (line,) = [ln for ln in order["lines"] if ln["line_id"] == "A"]
    assert (line["refunded_qty"], line["refund_failed_qty"]) == (0, 1)
    (paid,) = order["tenders"]
    assert (paid["refunded"]["amount"], paid["refund_failed"]) == (0, tender["amount"])
    listed = shop.client.get("/v1/refunds?status=failed", headers=desk).json()["items"]
    assert [r["id"] for r in listed] == [refund["id"]]
