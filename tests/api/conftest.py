"""Shared fixtures of the HTTP API tests: a small shop on each database, tokens, snapshots.

``world`` builds, on each backend of the ``db_url`` fixture (tests/conftest.py), the app of
``create_app`` (fixed clock, sandbox SMS) and a shop with two customers and three merchants:

- Alice (``cust-alice``): order ``ord-alice-mixed`` with a line of m-1 and a line of m-2, order
  ``ord-alice-m1`` with a line of m-1 only, a case on each (both under review; a photo on the
  first, kept in memory), a coupon, a phone number and an inbox message;
- Bob (``cust-bob``): order ``ord-bob-1`` (m-1), a case on it, a coupon, a phone and an inbox
  message;
- merchant m-3 has no line anywhere.

Every id of Alice's is distinctive, so "Bob's answer never contains Alice's ids" and "m-1's
answer never contains m-2's line" are plain substring checks (``alice_markers``,
``m2_markers``). ``db_snapshot`` reads every table (none left out) for "nothing changed".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, insert, select

from refundry.adapters.inbox import InboxNotifier
from refundry.adapters.photos import MemoryPhotoStorage
from refundry.adapters.sms import SandboxSms
from refundry.api.app import create_app
from refundry.api.auth import issue_token
from refundry.services.cases.opening import open_case
from refundry.services.cases.photos import add_photos
from refundry.services.cases.process import Actor
from refundry.services.operations.heartbeats import beat
from refundry.services.orders.ingest import ingest_order
from refundry.services.passkeys import register_passkey, registration_options
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.shop_webhooks.endpoints import register_endpoint
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.tables import customer_contacts, inbox_messages
from tests.photo_files import png
from tests.soft_authenticator import SoftPasskey

SECRET = b"api-test-secret"


def production_env(secret: str) -> dict[str, str]:
    """What a shop sets to run refundry outside dev mode, every adapter named: here each is
    chosen as its sandbox explicitly (the server then warns at start, and does not refuse)."""
    return {
        "REFUNDRY_SECRET": secret,
        "REFUNDRY_AUDIT_KEY": secret + "-audit",
        "REFUNDRY_GATEWAY_WEBHOOK_SECRET": secret + "-gateway-webhook",
        "REFUNDRY_CARRIER_WEBHOOK_SECRET": secret + "-carrier-webhook",
        "REFUNDRY_GATEWAY": "sandbox",
        "REFUNDRY_CARRIER": "sandbox",
        "REFUNDRY_SMS": "sandbox",
        "REFUNDRY_EMAIL": "sandbox",
        "REFUNDRY_EVENTS": "sandbox",
    }


WEBHOOK_SECRET = b"api-test-webhook-secret"
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # worked_examples.NOW in UTC
OPENED_LONG_AGO = NOW - timedelta(days=200)  # accounts old enough for every risk rule

ALICE = "cust-alice"
BOB = "cust-bob"
M1, M2, M3 = "m-1", "m-2", "m-3"
AGENT = "agent-li"
ADMIN = "admin-root"

ALICE_MIXED = "ord-alice-mixed"
ALICE_M1 = "ord-alice-m1"
ALICE_REFUNDED = "ord-alice-refunded"  # one refund applied straight (no case)
LINE_ALICE_REFUNDED = "ln-alice-refunded"
BOB_ORDER = "ord-bob-1"
LINE_ALICE_M1 = "ln-alice-m1"
LINE_ALICE_M2 = "ln-alice-m2-secret"
LINE_ALICE_ONLY_M1 = "ln-alice-only-m1"
LINE_BOB = "ln-bob-1"
SKU_M2 = "SKU-M2-SECRET"
TITLE_M2 = "M2 secret parasol"
ALICE_COUPON = "cp-alice-secret"
BOB_COUPON = "cp-bob-1"
ALICE_PHONE = "+8613800000101"
BOB_PHONE = "+8613800000202"
ALICE_INBOX_MARKER = "inbox-alice-secret"


def problem_of(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The problem+json body of ``response``, checked to carry ``status``, ``code`` and
    ``field``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"], body["field"]) == (status, code, field), body
    return body


def bearer(
    role: str, subject: str, *, now: datetime = NOW, secret: bytes = SECRET
) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(secret, role=role, subject=subject, now=now)}


def _line(line_id: str, merchant: str, price: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": line_id,
        "sku": extra.pop("sku", f"SKU-{line_id}"),
        "title": extra.pop("title", f"Item {line_id}"),
        "merchant_id": merchant,
        "quantity": 1,
        "unit_price": price,
        **extra,
    }


def order_doc(order_id: str, customer: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(line["unit_price"] * line["quantity"] for line in lines)
    return {
        "id": order_id,
        "customer_id": customer,
        "currency": "CNY",
        "status": "delivered",
        "paid_at": (NOW - timedelta(days=3)).isoformat(),
        "lines": lines,
        "tenders": [
            {
                "id": "T1",
                "kind": "external",
                "method": "alipay",
                "amount": total,
                "gateway_txn_id": f"ali-{order_id}",
            }
        ],
    }


def coupon(coupon_id: str, value: int) -> dict[str, Any]:
    return {"id": coupon_id, "value": value, "valid_until": (NOW + timedelta(days=30)).isoformat()}


@dataclass
class World:
    db_url: str
    app: FastAPI
    client: TestClient
    engine: Engine
    sms: SandboxSms
    case_alice_mixed: str = ""
    case_alice_m1: str = ""
    case_bob: str = ""
    photo_alice: str = ""  # a photo of Alice's on her mixed case
    refund_alice: str = ""
    inbox_alice: int = 0
    inbox_bob: int = 0
    webhook_endpoint: str = ""  # the shop's endpoint, registered by its admin
    bulk_job: str = "bj_world"  # test_authorization starts a real one (its walk reads it)
    extra: dict[str, Any] = field(default_factory=dict)

    def ids(self) -> dict[str, Any]:
        """Alice's object per path-parameter name (what "A's objects" are)."""
        return {
            "order_id": ALICE_MIXED,
            "case_id": self.case_alice_mixed,
            "customer_id": ALICE,
            "message_id": self.inbox_alice,
            "refund_id": self.refund_alice,
            "passkey_id": self.extra.get("passkey_alice", ""),
            "endpoint_id": self.webhook_endpoint,
            "job_id": self.bulk_job,  # a bulk refund job is no customer's: the admin's only
            "photo_id": self.photo_alice,
        }

    def alice_markers(self) -> list[str]:
        return [
            ALICE,
            ALICE_MIXED,
            ALICE_M1,
            LINE_ALICE_M1,
            LINE_ALICE_M2,
            LINE_ALICE_ONLY_M1,
            ALICE_COUPON,
            ALICE_PHONE,
            ALICE_INBOX_MARKER,
            self.case_alice_mixed,
            self.case_alice_m1,
            self.photo_alice,
            self.refund_alice,
            ALICE_REFUNDED,
        ]


M2_MARKERS = [LINE_ALICE_M2, SKU_M2, TITLE_M2]


def _ingest(engine: Engine, policy: Any, doc: Any, phone: str) -> None:
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, doc, policy=policy, now=OPENED_LONG_AGO)
        cid = doc["order"]["customer_id"]
        known = uow.conn.execute(
            select(customer_contacts.c.customer_id).where(customer_contacts.c.customer_id == cid)
        ).first()
        if known is None:
            uow.conn.execute(
                insert(customer_contacts).values(
                    customer_id=cid, phone=phone, channels=json.dumps(["in_app"])
                )
            )
        uow.commit()


def _open(world: World, customer: str, request: dict[str, Any]) -> str:
    desk = world.app.state.ctx.desk
    opened = open_case(desk, actor=Actor("customer", customer), request=request, now=NOW)
    assert opened.state == "under_review", opened.review
    return opened.case_id


def _passkeys(world: World) -> None:
    """Alice's registered passkey (``passkey_id``), and a passkey Bob may register once
    (``extra["passkey_bob"]``: POST /v1/identity/passkeys's body, its challenge issued)."""
    rp, engine = world.app.state.ctx.desk.relying_party, world.engine
    alice = SoftPasskey(rp_id=rp.id, origin=rp.origins[0])
    options = json.loads(registration_options(engine, rp, actor=Actor("customer", ALICE), now=NOW))
    register_passkey(
        engine,
        rp,
        actor=Actor("customer", ALICE),
        credential=alice.create(options),
        name="a",
        now=NOW,
    )
    world.extra["passkey_alice"] = alice.id
    bob = SoftPasskey(rp_id=rp.id, origin=rp.origins[0])
    options = json.loads(registration_options(engine, rp, actor=Actor("customer", BOB), now=NOW))
    world.extra["passkey_bob"] = {"credential": bob.create(options), "name": "b"}


def build_world(db_url: str) -> Iterator[World]:
    sms = SandboxSms()
    app = create_app(
        Settings(
            database_url=db_url,
            secret=SECRET,
            gateway_webhook_secret=WEBHOOK_SECRET,
            carrier_webhook_secret=WEBHOOK_SECRET,
            dev=True,
        ),
        sms=sms,
        clock=lambda: NOW,
    )
    ctx = app.state.ctx
    ctx.runtime.photos = MemoryPhotoStorage()  # the cases' photos: in memory here
    engine: Engine = ctx.engine
    policy = ctx.desk.policy
    beat(engine, name="worker", at=NOW)  # a worker is running: /readyz answers 200
    _ingest(
        engine,
        policy,
        {
            "order": order_doc(
                ALICE_MIXED,
                ALICE,
                [
                    _line(LINE_ALICE_M1, M1, 30000),
                    _line(LINE_ALICE_M2, M2, 20000, sku=SKU_M2, title=TITLE_M2),
                ],
            ),
            "customer": {"points_balance": 1000, "coupons": [coupon(ALICE_COUPON, 500)]},
        },
        ALICE_PHONE,
    )
    _ingest(
        engine,
        policy,
        {"order": order_doc(ALICE_M1, ALICE, [_line(LINE_ALICE_ONLY_M1, M1, 15000)])},
        ALICE_PHONE,
    )
    _ingest(
        engine,
        policy,
        {"order": order_doc(ALICE_REFUNDED, ALICE, [_line(LINE_ALICE_REFUNDED, M1, 9000)])},
        ALICE_PHONE,
    )
    asked = {
        "order_id": ALICE_REFUNDED,
        "lines": [{"line_id": LINE_ALICE_REFUNDED, "quantity": 1}],
        "reason": "quality_issue",
        "kind": "refund_only",
    }
    planned = preview_refund(engine, order_id=ALICE_REFUNDED, request=asked, policy=policy, now=NOW)
    refund_alice = apply_refund(
        engine,
        order_id=ALICE_REFUNDED,
        request=asked,
        expected_plan_hash=planned["plan_hash"],
        idempotency_key="world:alice",
        actor=f"admin:{ADMIN}",
        now=NOW,
        policy=policy,
    ).refund_id
    _ingest(
        engine,
        policy,
        {
            "order": order_doc(BOB_ORDER, BOB, [_line(LINE_BOB, M1, 12000)]),
            "customer": {"coupons": [coupon(BOB_COUPON, 300)]},
        },
        BOB_PHONE,
    )
    with TestClient(app) as client:
        world = World(db_url=db_url, app=app, client=client, engine=engine, sms=sms)
        world.refund_alice = refund_alice
        world.case_alice_mixed = _open(
            world,
            ALICE,
            {
                "order_id": ALICE_MIXED,
                "reason": "quality_issue",
                "kind": "return_and_refund",
                "lines": [
                    {"line_id": LINE_ALICE_M1, "quantity": 1},
                    {"line_id": LINE_ALICE_M2, "quantity": 1},
                ],
            },
        )
        world.photo_alice = add_photos(
            ctx.desk,
            ctx.runtime.photo_storage,
            world.case_alice_mixed,
            actor=Actor("customer", ALICE),
            now=NOW,
            uploads=[png()],
        )[0].id
        world.case_alice_m1 = _open(
            world,
            ALICE,
            {
                "order_id": ALICE_M1,
                "reason": "quality_issue",
                "kind": "refund_only",
                "lines": [{"line_id": LINE_ALICE_ONLY_M1, "quantity": 1}],
            },
        )
        world.case_bob = _open(
            world,
            BOB,
            {
                "order_id": BOB_ORDER,
                "reason": "quality_issue",
                "kind": "refund_only",
                "lines": [{"line_id": LINE_BOB, "quantity": 1}],
            },
        )
        inbox = InboxNotifier(engine)
        for who, key, order in ((ALICE, "alice", ALICE_MIXED), (BOB, "bob", BOB_ORDER)):
            inbox.send(
                {
                    "customer_id": who,
                    "order_id": order,
                    "template": "case.received",
                    "locale": "en",
                    "params": {"marker": f"inbox-{key}-secret"},
                },
                key=f"api-test:{key}",
            )
        with engine.connect() as conn:
            ids = dict(
                conn.execute(select(inbox_messages.c.customer_id, inbox_messages.c.id)).all()
            )
        world.inbox_alice, world.inbox_bob = int(ids[ALICE]), int(ids[BOB])
        _passkeys(world)
        world.webhook_endpoint = register_endpoint(
            engine,
            actor=Actor("admin", ADMIN),
            url="https://shop.example/refundry-webhooks",
            event_types=["*"],
            now=NOW,
        ).endpoint.id
        yield world
    engine.dispose()


@pytest.fixture()
def world(db_url: str) -> Iterator[World]:
    yield from build_world(db_url)


def db_snapshot(engine: Engine) -> dict[str, tuple[int, str]]:
    """Every table of the database (reflected, none left out): row count and a hash of its rows
    (order-independent)."""
    meta = MetaData()
    meta.reflect(bind=engine)
    out: dict[str, tuple[int, str]] = {}
    with engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            rows = sorted(repr(tuple(row)) for row in conn.execute(select(table)))
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
            out[name] = (len(rows), digest)
    return out


def snapshot_diff(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> str:
    changed = [
        f"{name}: {before.get(name, (0, ''))[0]} -> {after.get(name, (0, ''))[0]} rows"
        + (" (content changed)" if before.get(name) != after.get(name) else "")
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
    return "; ".join(changed)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """``world`` shared by a module's tests (for the slower walks that may change it freely),
    on each backend as tests/conftest.py's ``db_url`` makes them."""
    from tests.conftest import migrated_database

    with migrated_database(request.param, request, tmp_path_factory) as url:
        yield from build_world(url)
