"""A small shop for the page tests, on each database of the ``db_url`` fixture.

Customer ``c-100`` (phone on file) has SPEC §3's 满500减100 order ``o-500-100`` (X ¥400 and
Y ¥200 with ¥100 off the basket), SPEC's ``o-coupon`` (¥300 less the ¥30 coupon CP-30, which
has expired since: a refund reissues it) and ``o-mugs``: three mugs at ¥100 with a ¥10 coupon (each
unit paid ¥96.66 / ¥96.67 / ¥96.67). Customer ``c-200`` has ``o-other``. The policy asks for a
one-time code above ¥150, so refunding Y (¥100 back) needs none and refunding X (¥300 back)
does; a refund-only case for a quality problem, or one of ¥100 at most, is approved by the
rules (then the worker pays it). ``signed_in`` goes through the shop's sign-in link the way
a browser does.

``add_campaign_order`` adds, for the tests that ask for it, ``o-campaign``: SPEC's 满1000元返200元
on its rice cooker (a cashback of ¥200 granted, one use per customer), an expired ¥50 coupon on
it, 1,000 points redeemed and 1,250 earned; returning the cooker alone reissues the coupon,
returns and reverses points, takes the reward back and restores the campaign's eligibility.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import Engine, insert

from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.sms import SandboxSms
from refundry.api.app import create_app
from refundry.api.auth import issue_token
from refundry.demo import worked_examples as ex
from refundry.demo.serve import POLICY as DEMO_POLICY
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.tables import customer_contacts
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS, Live, serving

SECRET = "web-test-secret"
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
# The demo shop's review rules (refundry/demo/serve.py), a late change of mind rejected, and
# a one-time code above ¥150.
POLICY = (
    DEMO_POLICY
    + """
[[review.rules]]
name = "late_changed_mind"
decision = "reject"
reasons = ["changed_mind"]
min_days_since_delivery = 8

[identity]
otp_above_amount = 15000
"""
)
CUSTOMER, OTHER = "c-100", "c-200"
PHONE = "+8613800000100"
THRESHOLD = "o-500-100"
MUGS = "o-mugs"
FOREIGN = "o-other"


def _mugs() -> dict[str, Any]:
    return ex.order(
        MUGS,
        [ex.line("M", 10000, quantity=3, title="Blue mug")],
        29000,
        adjustments=[
            {
                "id": "ADJ-M",
                "kind": "coupon",
                "amount": 1000,
                "lines": ["M"],
                "source": {"type": "coupon", "id": "CP-10"},
            }
        ],
    )


def _foreign() -> dict[str, Any]:
    doc = ex.order(FOREIGN, [ex.line("Z", 8800, title="Other customer's lamp")], 8800)
    doc["customer_id"] = OTHER
    return doc


ORDERS = (ex.COUPON, ex.THRESHOLD, _mugs(), _foreign())
COUPON = "o-coupon"
CAMPAIGN = "o-campaign"
CAMPAIGN_NAME = "满1000元返200元"  # the campaign's id is the name the shop shows (SPEC §6)


def campaign_order() -> dict[str, Any]:
    return ex.order(
        CAMPAIGN,
        [ex.line("A", 110000, title="Rice cooker"), ex.line("B", 20000, title="Kettle")],
        124000,
        adjustments=[
            {
                "id": "ADJ-C50",
                "kind": "coupon",
                "amount": 5000,
                "lines": ["A"],
                "source": {"type": "coupon", "id": "CP-50"},
            }
        ],
        campaigns=[
            {
                "id": CAMPAIGN_NAME,
                "kind": "order_cashback",
                "measure": "paid",
                "tiers": [{"threshold": 100000, "reward": 20000}],
                "lines": ["A"],
                "quota_per_customer": 1,
            }
        ],
        rewards=[
            {"id": "RW-C", "campaign_id": CAMPAIGN_NAME, "amount": 20000, "status": "granted"}
        ],
        points_earned={"points": 1250, "status": "granted"},
    ) | {
        "tenders": [
            {
                "id": "T1",
                "kind": "external",
                "method": "alipay",
                "amount": 124000,
                "gateway_txn_id": f"ali-{CAMPAIGN}",
            },
            {"id": "T2", "kind": "points", "amount": 1000, "points": 1000},
        ]
    }


CP_50 = {"id": "CP-50", "value": 5000, "valid_until": "2026-11-10T00:00:00+08:00"}


def add_campaign_order(shop: Shop) -> None:
    """``o-campaign`` for c-100 with the coupon the customer held (the shop's snapshot adds the
    held items refundry lacks), its payment held by the shop's sandbox gateway."""
    doc = campaign_order()
    shop.app.state.ctx.gateway.capture(f"ali-{CAMPAIGN}", 124000, "CNY")
    with UnitOfWork(shop.engine) as uow:
        ingest_order(
            uow.conn,
            {"order": doc, "customer": {"coupons": [CP_50]}},
            policy=shop.app.state.ctx.desk.policy,
            now=NOW - timedelta(days=3),
        )
        uow.commit()


def link_token(customer: str, *, now: datetime = NOW, minutes: int = 5) -> str:
    """What the shop puts in its sign-in link: a customer token living a few minutes."""
    return issue_token(
        SECRET.encode(), role="customer", subject=customer, now=now, ttl=timedelta(minutes=minutes)
    )


def settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "secret": SECRET,
        "gateway_webhook_secret": SECRET + "-gw",
        "carrier_webhook_secret": SECRET + "-carrier",
        "policy_text": POLICY,
        "dev": True,
    }
    return Settings(**(values | overrides))


def seed(engine: Engine, policy: Any) -> None:
    with UnitOfWork(engine) as uow:
        for doc in ORDERS:
            ingested: dict[str, Any] = {"order": doc}
            if doc is ex.COUPON:  # c-100's first order: the customer comes with it
                ingested["customer"] = {"coupons": ex.COUPON_SNAPSHOT["coupons"]}
            ingest_order(uow.conn, ingested, policy=policy, now=NOW - timedelta(days=30))
        uow.conn.execute(
            insert(customer_contacts).values(
                customer_id=CUSTOMER, phone=PHONE, channels=json.dumps(["in_app"])
            )
        )
        uow.commit()


@dataclass
class Shop:
    app: FastAPI
    engine: Engine
    sms: SandboxSms

    def client(self, **headers: str) -> TestClient:
        return TestClient(self.app, headers=headers)


def make_shop(db_url: str, *, sms: Any = None, **overrides: Any) -> Shop:
    """The app over ``db_url`` (fixed clock, sandbox SMS, a sandbox gateway holding each
    order's payment and settling refunds at once) with the shop seeded."""
    sms = sms or SandboxSms()
    gateway = SandboxGateway(clock=lambda: NOW, confirm_after=timedelta(0))
    for doc in ORDERS:
        for tender in doc["tenders"]:
            gateway.capture(tender["gateway_txn_id"], tender["amount"], doc["currency"])
    app = create_app(settings(db_url, **overrides), sms=sms, gateway=gateway, clock=lambda: NOW)
    engine: Engine = app.state.ctx.engine
    seed(engine, app.state.ctx.desk.policy)
    return Shop(app=app, engine=engine, sms=sms)


@pytest.fixture()
def shop(db_url: str) -> Iterator[Shop]:
    made = make_shop(db_url)
    try:
        yield made
    finally:
        made.engine.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


def signed_in(client: TestClient, customer: str = CUSTOMER) -> TestClient:
    page = client.get("/signin", params={"token": link_token(customer)})
    assert page.status_code == 200
    done = client.post(
        "/signin",
        data={"token": link_token(customer), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return client


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, launched once per run (tests/web/browser.py)."""
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does), "
        "or set REFUNDRY_TEST_CHROMIUM"
    )
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture()
def live(shop: Shop) -> Iterator[Live]:
    """The shop served by uvicorn on a loopback port, with its worker running."""
    with serving(shop) as running:
        yield running
