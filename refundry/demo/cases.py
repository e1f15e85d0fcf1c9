"""The third part of `make demo`: after-sales cases from request to completion.

A customer asks, the rules or an agent decide, the return is booked with the sandbox carrier and
tracked, the merchant inspects, the money goes back through the sandbox gateway, the timers
complete the case — and the customer is told at each step, in Chinese, on the in-app inbox,
by SMS and by email (the sandboxes keep what they would have sent).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway import GatewayEvent
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.logistics import TrackingEvent
from refundry.adapters.logistics_sandbox import SandboxLogistics
from refundry.adapters.sms import SandboxSms
from refundry.bootstrap import build
from refundry.notifications import render
from refundry.render import format_minor
from refundry.services.audit.verify import verify_chain
from refundry.services.cases.actions import approve, inspect, receive
from refundry.services.cases.opening import open_case
from refundry.services.cases.process import Actor
from refundry.services.cases.shipments import handle_tracking_event
from refundry.services.cases.timers import run_timers
from refundry.services.customers.identity import request_code
from refundry.services.errors import Unprocessable
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.gateway_events import handle_gateway_event
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.migrate import upgrade
from refundry.store.tables import case_events, customer_contacts, inbox_messages, shipments

__all__ = ["run_cases"]

START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
CUSTOMER = "c-linmei"


class _Outbox:
    """The demo's email channel: keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, *, to: str, subject: str, body: str, key: str) -> None:
        self.sent.append((to, subject))


def _order(
    order_id: str, lines: list[tuple[str, str, int, str]], *, delivered: datetime, paid: datetime
) -> dict[str, Any]:
    docs = [
        {"id": lid, "sku": sku, "title": sku, "merchant_id": m, "quantity": 1, "unit_price": price}
        for lid, sku, price, m in lines
    ]
    total = sum(price for _, _, price, _ in lines)
    return {
        "id": order_id,
        "customer_id": CUSTOMER,
        "currency": "CNY",
        "status": "delivered",
        "paid_at": paid.isoformat(),
        "delivered_at": delivered.isoformat(),
        "lines": docs,
        "shipping_fee": 800,
        "tenders": [
            {
                "id": "CARD",
                "kind": "external",
                "method": "alipay",
                "amount": total + 800,
                "gateway_txn_id": f"ali-{order_id}",
            }
        ],
        "points_earned": {"points": total // 100, "status": "granted"},
        "growth_value": total // 100,
    }


def run_cases(console: Console, path: Path = Path("refundry-demo-cases.sqlite")) -> dict[str, Any]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    clock = ManualClock(START)
    gateway = SandboxGateway(
        clock=clock, seed=5, duplicate_webhook_rate=0.5, confirm_after=timedelta(seconds=5)
    )
    carrier = SandboxLogistics(clock, seed=5, duplicate_event_rate=0.5, reorder_events=True)
    sms, email = SandboxSms(), _Outbox()
    # Dev mode: every adapter a sandbox; these ones are seeded and misbehave on purpose.
    runtime = build(
        Settings(dev=True, database_url=url),
        clock=clock,
        gateway=gateway,
        logistics=carrier,
        sms=sms,
        email=email,
    )
    engine, relay, desk = runtime.engine, runtime.relay(name="relay"), runtime.desk
    orders = [
        _order(
            "o-jacket",
            [("L1", "Down jacket", 69900, "m-north"), ("L2", "Wool scarf", 15900, "m-north")],
            delivered=START - timedelta(days=3),
            paid=START - timedelta(days=6),
        ),
        _order(
            "o-tea",
            [("L1", "Oolong tea", 12800, "m-tea")],
            delivered=START - timedelta(days=2),
            paid=START - timedelta(days=4),
        ),
        _order(
            "o-phone",
            [("L1", "Phone", 459900, "m-digital")],
            delivered=START - timedelta(days=20),
            paid=START - timedelta(days=25),
        ),
    ]
    with UnitOfWork(engine) as uow:
        for doc in orders:
            ingest_order(
                uow.conn,
                {"order": doc, "customer": {"locale": "zh-CN", "points_balance": 2000}},
                policy=desk.policy,
                now=START - timedelta(days=120),
            )
            gateway.capture(doc["tenders"][0]["gateway_txn_id"], doc["tenders"][0]["amount"], "CNY")
        uow.conn.execute(
            insert(customer_contacts).values(
                customer_id=CUSTOMER,
                phone="+86 138 0000 0000",
                email="linmei@example.com",
                channels='["in_app", "sms", "email"]',
            )
        )
        uow.commit()

    def payment_webhook(event: GatewayEvent) -> None:
        handle_gateway_event(engine, event, now=clock())

    def tracking_webhook(event: TrackingEvent) -> None:
        handle_tracking_event(
            engine,
            event_id=event.event_id,
            tracking_number=event.tracking_number,
            status=event.status,
            occurred_at=event.occurred_at,
            now=clock(),
        )

    def tick(hours: float = 1) -> None:
        relay.drain()
        clock.advance(timedelta(hours=hours))
        gateway.deliver_due(payment_webhook)
        carrier.deliver_due(tracking_webhook)
        run_timers(desk, now=clock())
        relay.drain()

    me = Actor("customer", CUSTOMER)
    # 1. Tea never arrived: refund only; no rule decides a 136.00 case, so it waits in the agent
    #    queue until the merchant-silent timer approves it.
    tea = open_case(
        desk,
        actor=me,
        now=clock(),
        request={
            "order_id": "o-tea",
            "reason": "not_received",
            "kind": "refund_only",
            "lines": [{"line_id": "L1", "quantity": 1}],
        },
    )
    tick()
    # 2. The jacket has a flaw: a return with a prepaid label (the merchant pays it).
    jacket = open_case(
        desk,
        actor=me,
        now=clock(),
        evidence=["photo-1.jpg"],
        request={
            "order_id": "o-jacket",
            "reason": "quality_issue",
            "kind": "return_and_refund",
            "return_method": "prepaid_label",
            "lines": [{"line_id": "L1", "quantity": 1}, {"line_id": "L2", "quantity": 1}],
        },
    )
    merchant = Actor("merchant", "m-north")
    if jacket.state == "under_review":
        approve(desk, jacket.case_id, actor=merchant, now=clock(), comment="sorry about that")
    tick()
    with UnitOfWork(engine, readonly=True) as uow:
        tracking = uow.conn.execute(
            select(shipments.c.tracking_number).where(shipments.c.case_id == jacket.case_id)
        ).scalar_one()
    carrier.customer_ships(tracking)
    for _ in range(4):
        tick(hours=14)
    receive(desk, jacket.case_id, actor=merchant, now=clock())
    inspect(
        desk,
        jacket.case_id,
        actor=merchant,
        now=clock(),
        result="partial",
        accepted={"L1": 1},
        reason="the scarf was not sent back",
    )
    for _ in range(3):
        tick()
    # 3. A phone, changed mind after 20 days: above the one-time-code amount.
    phone_req = {
        "order_id": "o-phone",
        "reason": "changed_mind",
        "kind": "return_and_refund",
        "return_method": "self_ship",
        "lines": [{"line_id": "L1", "quantity": 1}],
    }
    try:
        open_case(desk, actor=me, now=clock(), request=phone_req)
        needed = "no"
    except Unprocessable as exc:
        needed = exc.code
    code_id = request_code(
        engine,
        customer_id=CUSTOMER,
        purpose="case.submit",
        now=clock(),
        policy=desk.process.identity,
        sms=sms,
        secret=desk.identity_secret,
        rng=secrets,
    )
    text = sms.last_to("+86 138 0000 0000")
    code = "".join(ch for ch in (text.text if text else "") if ch.isdigit())[:6]
    phone = open_case(desk, actor=me, now=clock(), request=phone_req, otp=(code_id, code))
    tick()
    run_timers(desk, now=clock() + timedelta(hours=1))
    relay.drain()

    for title, case_id in (
        ("Tea, not received (refund only)", tea.case_id),
        ("Jacket + scarf, quality issue (return, partial inspection)", jacket.case_id),
        (f"Phone, changed mind (one-time code: {needed})", phone.case_id),
    ):
        table = Table(title=title, expand=True, title_justify="left")
        for col in ("when", "who", "action", "state"):
            table.add_column(col)
        with UnitOfWork(engine, readonly=True) as uow:
            for e in uow.conn.execute(
                select(case_events)
                .where(case_events.c.case_id == case_id)
                .order_by(case_events.c.id)
            ):
                table.add_row(e.at.strftime("%m-%d %H:%M"), e.actor, e.action, e.to_state)
        console.print(table)
    with UnitOfWork(engine, readonly=True) as uow:
        inbox = uow.conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)).all()
        chain = verify_chain(uow.conn)
    told = Table(
        title=f"What {CUSTOMER} was told (in-app inbox, zh-CN)", expand=True, title_justify="left"
    )
    told.add_column("message")
    for msg in inbox[:12]:
        params = {
            "currency": "CNY",
            "order_id": msg.order_id,
            "case_id": "",
            **json.loads(msg.params),
        }
        told.add_row(render(msg.template, params, msg.locale).text)
    console.print(told)
    console.print(
        f"{len(inbox)} inbox messages, {len(sms.sent)} SMS, {len(email.sent)} emails; "
        f"gateway refunded {format_minor(sum(gateway.ledger.refunded.values()), 'CNY')};"
        f" audit chain {'verified' if chain.ok else 'BROKEN'} ({chain.entries} entries)."
    )
    engine.dispose()
    if not chain.ok:
        raise SystemExit("demo: the audit chain does not verify")
    return {
        "tea": tea.case_id,
        "jacket": jacket.case_id,
        "phone": phone.case_id,
        "needed": needed,
        "inbox": len(inbox),
        "sms": len(sms.sent),
        "emails": len(email.sent),
        "audit": chain.entries,
    }
