"""The whole shop around the case process, for the service-level journeys (tests/e2e).

``world`` wires, on each database of the ``engine`` fixture: a ManualClock; the SandboxGateway
(each ingested order's external tender captured); SandboxLogistics (every tracking event sent
twice, in random order); SandboxSms; a RedisStreamPublisher on the real Redis with a stream
prefix of the test's own (its keys are deleted afterwards); these passed to the bootstrap
(refundry.bootstrap.build), which builds the rest as serve and worker do — the SMTP sender
from settings talking to a real aiosmtpd server, the channel notifier with the in-app inbox,
the outbox relay with the logistics sandbox; and a CaseDesk. Helpers drive the relay, the gateway's
webhooks and the carrier's tracking events as the clock moves.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, cast

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine, func, insert, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.email import message_id_for
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.logistics import TrackingEvent
from refundry.adapters.logistics_sandbox import SandboxLogistics
from refundry.adapters.redis_events import RedisStreamPublisher
from refundry.adapters.sms import SandboxSms
from refundry.bootstrap import build
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ExpressPolicy, ProcessPolicy
from refundry.services.audit.verify import verify_chain
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.process import Actor, load_case
from refundry.services.cases.shipments import handle_tracking_event
from refundry.services.cases.timers import run_timers
from refundry.services.orders.ingest import ingest_order
from refundry.services.outbox.relay import Relay
from refundry.services.refunds.gateway_events import handle_gateway_event
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.tables import (
    campaign_rewards,
    case_events,
    customer_contacts,
    entitlements,
    inbox_messages,
    ledger_accounts,
    ledger_postings,
    outbox,
)

REDIS_URL = os.environ.get("REFUNDRY_TEST_REDIS", "redis://127.0.0.1:6379/0")
START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # worked_examples.NOW in UTC
OPENED_LONG_AGO = START - timedelta(days=200)  # accounts old enough for every risk rule
SENDER = "refunds@shop.example"
STAFF = Actor("agent", "e2e")

# Review by an agent (no automatic rule decides) and no 极速退款: every journey walks every
# step of SPEC §4 in order. Risk rules and identity checks keep their defaults.
JOURNEY_PROCESS = ProcessPolicy(review_rules=(), express=ExpressPolicy(enabled=False))


# -- a real SMTP server ---------------------------------------------------------------------


class Mailbox:
    """aiosmtpd handler keeping every message it accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = cast(bytes, envelope.original_content or envelope.content)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.messages.append(cast(EmailMessage, msg))
        return "250 OK"

    def snapshot(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def smtp_mailbox() -> Iterator[tuple[Mailbox, int]]:
    """One real SMTP server for the session (starting one costs ~0.1 s); each world reads only
    the messages that arrived after it was built."""
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        message = f"Redis unavailable at {REDIS_URL}: {exc}. Set REFUNDRY_TEST_REDIS."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


# -- the world ------------------------------------------------------------------------------


def contact_of(customer_id: str) -> tuple[str, str]:
    """(phone, email) of a test customer: deterministic, one per customer."""
    digits = f"{int(hashlib.sha256(customer_id.encode()).hexdigest(), 16) % 10**8:08d}"
    return f"+86139{digits}", f"{customer_id}@customers.example"


@dataclass
class World:
    engine: Engine
    clock: ManualClock
    gateway: SandboxGateway
    logistics: SandboxLogistics
    sms: SandboxSms
    mailbox: Mailbox
    mail_seen: int  # messages in the session's mailbox before this world
    publisher: RedisStreamPublisher
    relay: Relay
    desk: CaseDesk
    policy: Policy = field(default_factory=Policy)
    customers: set[str] = field(default_factory=set)
    tracking: list[tuple[str, str]] = field(default_factory=list)  # (event id, outcome)

    # -- time and the outside world ----------------------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def advance(self, **delta: float) -> datetime:
        return self.clock.advance(timedelta(**delta))

    def drain(self) -> int:
        return self.relay.drain()

    def webhooks(self) -> int:
        """Deliver every gateway webhook due now."""
        return self.gateway.deliver_due(
            lambda e: handle_gateway_event(self.engine, e, now=self.clock())
        )

    def settle_money(self) -> None:
        """The relay sends the refunds, the gateway settles them and says so by webhook."""
        self.drain()
        self.advance(seconds=10)
        self.webhooks()
        self.drain()

    def carrier_events(self) -> list[str]:
        """Deliver every tracking event due now; returns the outcomes in delivery order."""
        outcomes: list[str] = []

        def sink(event: TrackingEvent) -> None:
            outcome = handle_tracking_event(
                self.engine,
                event_id=event.event_id,
                tracking_number=event.tracking_number,
                status=event.status,
                occurred_at=event.occurred_at,
                now=self.clock(),
                data={"location": event.location},
            )
            outcomes.append(outcome)
            self.tracking.append((event.event_id, outcome))

        self.logistics.deliver_due(sink)
        return outcomes

    def complete(self) -> None:
        """The completion timer (policy: at once once refunded), then its notifications."""
        run_timers(self.desk, now=self.clock())
        self.drain()

    # -- set-up ------------------------------------------------------------------------------

    def ingest(
        self,
        order: dict[str, Any],
        customer: dict[str, Any] | None = None,
        *,
        channels: tuple[str, ...] = ("in_app", "sms", "email"),
    ) -> None:
        """Ingest a paid order (opening the customer with ``customer`` the first time, long
        ago), capture its external tenders at the gateway, and give the customer its contacts."""
        doc: Any = order if customer is None else {"order": order, "customer": customer}
        with UnitOfWork(self.engine) as uow:
            ingest_order(uow.conn, doc, policy=self.policy, now=OPENED_LONG_AGO)
            cid = order["customer_id"]
            if cid not in self.customers:
                phone, mail = contact_of(cid)
                uow.conn.execute(
                    insert(customer_contacts).values(
                        customer_id=cid, phone=phone, email=mail, channels=json.dumps(channels)
                    )
                )
                self.customers.add(cid)
            uow.commit()
        for tender in order["tenders"]:
            if tender["kind"] == "external":
                self.gateway.capture(tender["gateway_txn_id"], tender["amount"], order["currency"])

    def with_process(self, process: ProcessPolicy) -> CaseDesk:
        self.desk = CaseDesk(self.engine, self.desk.policy, process)
        return self.desk

    # -- reading -----------------------------------------------------------------------------

    def refunded(self) -> dict[str, int]:
        """Money the gateway has refunded (succeeded), per captured transaction that had any."""
        return {tx: n for tx, n in self.gateway.ledger.refunded.items() if n}

    def state(self, case_id: str) -> str:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return str(load_case(uow.conn, case_id, STAFF).state)

    def case(self, case_id: str) -> Any:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return load_case(uow.conn, case_id, STAFF)

    def timeline(self, case_id: str) -> list[str]:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return list(
                uow.conn.execute(
                    select(case_events.c.action)
                    .where(case_events.c.case_id == case_id)
                    .order_by(case_events.c.id)
                ).scalars()
            )

    def balances(self, customer_id: str = ex.CUSTOMER) -> dict[str, int]:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return {k: balance(uow.conn, k, customer_id) for k in ("points", "wallet")}

    def inbox(self, customer_id: str = ex.CUSTOMER) -> list[tuple[str, str]]:
        """(outbox key, template) of the customer's inbox, oldest first."""
        with UnitOfWork(self.engine, readonly=True) as uow:
            return [
                (r.key, r.template)
                for r in uow.conn.execute(
                    select(inbox_messages.c.key, inbox_messages.c.template)
                    .where(inbox_messages.c.customer_id == customer_id)
                    .order_by(inbox_messages.c.id)
                )
            ]

    def templates(self, customer_id: str = ex.CUSTOMER) -> list[str]:
        return [t for _, t in self.inbox(customer_id)]

    def inbox_params(self, template: str, customer_id: str = ex.CUSTOMER) -> list[dict[str, Any]]:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return [
                json.loads(p)
                for p in uow.conn.execute(
                    select(inbox_messages.c.params)
                    .where(
                        inbox_messages.c.customer_id == customer_id,
                        inbox_messages.c.template == template,
                    )
                    .order_by(inbox_messages.c.id)
                ).scalars()
            ]

    def mail(self) -> list[EmailMessage]:
        return self.mailbox.snapshot()[self.mail_seen :]

    def mail_to(self, customer_id: str) -> list[EmailMessage]:
        _, address = contact_of(customer_id)
        return [m for m in self.mail() if m["To"] == address]

    def sms_to(self, customer_id: str) -> list[str]:
        """Outbox keys of the notifications texted to the customer (one-time codes, sent
        directly under their code id, left out)."""
        phone, _ = contact_of(customer_id)
        return [m.key for m in self.sms.sent if m.phone == phone and not m.key.startswith("otp-")]

    def stream(self) -> list[dict[str, Any]]:
        """The Redis stream's entries (type, key, event) in publication order."""
        entries = self.publisher.client.xrange(self.publisher.stream)
        return [
            {
                "type": fields[b"type"].decode(),
                "key": fields[b"key"].decode(),
                "event": json.loads(fields[b"event"]),
            }
            for _, fields in entries
        ]

    def stream_types(self) -> list[str]:
        """The case and refund events, in order (the orders' ``order.ingested`` left out)."""
        return [e["type"] for e in self.stream() if e["type"] != "order.ingested"]

    def entitlement(self, item_id: str) -> Any:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return uow.conn.execute(select(entitlements).where(entitlements.c.id == item_id)).one()

    def entitlements(self) -> dict[str, Any]:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return {r.id: r for r in uow.conn.execute(select(entitlements))}

    def reward(self, reward_id: str) -> tuple[str, int, int]:
        """(status, amount, reduced) of a campaign reward."""
        with UnitOfWork(self.engine, readonly=True) as uow:
            r = uow.conn.execute(
                select(campaign_rewards).where(campaign_rewards.c.id == reward_id)
            ).one()
            return str(r.status), int(r.amount), int(r.reduced)

    def outbox_statuses(self) -> dict[str, int]:
        with UnitOfWork(self.engine, readonly=True) as uow:
            return {
                str(s): int(n)
                for s, n in uow.conn.execute(
                    select(outbox.c.status, func.count()).group_by(outbox.c.status)
                )
            }

    # -- invariants every journey ends with ---------------------------------------------------

    def assert_sound(self) -> None:
        """Audit chain verifies, every outbox message delivered, ledgers balance."""
        with UnitOfWork(self.engine, readonly=True) as uow:
            report = verify_chain(uow.conn)
            assert report.ok, report
            sums = dict(
                uow.conn.execute(
                    select(
                        ledger_postings.c.account_id, func.sum(ledger_postings.c.amount)
                    ).group_by(ledger_postings.c.account_id)
                ).all()
            )
            for acc in uow.conn.execute(select(ledger_accounts)):
                if not acc.id.startswith("shop/"):
                    assert acc.balance == sums.get(acc.id, 0), acc.id
            journals = uow.conn.execute(
                select(ledger_postings.c.journal_id, func.sum(ledger_postings.c.amount)).group_by(
                    ledger_postings.c.journal_id
                )
            ).all()
            assert [j for j, total in journals if total != 0] == []
        assert set(self.outbox_statuses()) <= {"done"}, self.outbox_statuses()

    def assert_told_everywhere(self, customer_id: str = ex.CUSTOMER) -> list[str]:
        """Every notification reached the inbox, the phone and the mailbox exactly once
        each; returns the inbox's templates."""
        keys = [k for k, _ in self.inbox(customer_id)]
        assert len(keys) == len(set(keys))
        assert sorted(self.sms_to(customer_id)) == sorted(keys)
        mails = self.mail_to(customer_id)
        ids = Counter(str(m["Message-ID"]) for m in mails)
        domain = SENDER.rpartition("@")[2]
        assert ids == Counter(message_id_for(k, domain) for k in keys)
        return [t for _, t in self.inbox(customer_id)]


@pytest.fixture()
def world(engine: Engine, smtp_mailbox: tuple[Mailbox, int], redis_url: str) -> Iterator[World]:
    mailbox, port = smtp_mailbox
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, seed=11, confirm_after=timedelta(seconds=5))
    logistics = SandboxLogistics(clock, seed=5, duplicate_event_rate=1.0, reorder_events=True)
    sms = SandboxSms()
    prefix = f"refundry-e2e-{uuid.uuid4().hex[:12]}"
    publisher = RedisStreamPublisher(redis_url, stream_prefix=prefix)
    # The bootstrap builds the rest as serve and worker do: the real SMTP sender from the
    # settings (the test's own mail server, no STARTTLS), the channel notifier and the relay;
    # the seeded sandboxes, the phone and the stream under the test's prefix are passed in.
    runtime = build(
        Settings(
            dev=True,
            database_url=engine.url.render_as_string(hide_password=False),
            email="smtp",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_sender=SENDER,
            smtp_starttls=False,
        ),
        clock=clock,
        engine=engine,
        gateway=gateway,
        logistics=logistics,
        sms=sms,
        publisher=publisher,
    )
    relay = runtime.relay()
    desk = CaseDesk(engine, Policy(), JOURNEY_PROCESS)
    try:
        yield World(
            engine=engine,
            clock=clock,
            gateway=gateway,
            logistics=logistics,
            sms=sms,
            mailbox=mailbox,
            mail_seen=len(mailbox.snapshot()),
            publisher=publisher,
            relay=relay,
            desk=desk,
        )
    finally:
        try:
            keys = list(publisher.client.scan_iter(match=f"{prefix}*", count=500))
            if keys:
                publisher.client.delete(*keys)
        finally:
            publisher.close()
