"""ChannelNotifier on a real database (SQLite and PostgreSQL), with the SMS sandbox, a real SMTP
server and the in-app inbox."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.email import SmtpEmailSender, message_id_for
from refundry.adapters.events import RecordingPublisher
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.inbox import InboxNotifier
from refundry.adapters.sms import SandboxSms
from refundry.notifications.channels import ChannelNotifier, DeliveryFailed
from refundry.notifications.templates import UnknownTemplate
from refundry.services.outbox.messages import enqueue
from refundry.services.outbox.relay import Relay
from refundry.store.tables import (
    customer_contacts,
    customers,
    inbox_messages,
    notification_deliveries,
    orders,
    outbox,
)
from tests.notifications.conftest import SmtpServer

NOW = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
PHONE, EMAIL = "+8613800000000", "li@example.com"


class Setup:
    def __init__(self, engine: Engine, server: SmtpServer) -> None:
        self.engine = engine
        self.server = server
        self.sms = SandboxSms()
        self.inbox = InboxNotifier(engine)
        self.email = SmtpEmailSender(server.host, server.port, sender="shop@refundry.test")
        self.notifier = ChannelNotifier(
            engine, sms=self.sms, email=self.email, inbox=self.inbox, clock=lambda: NOW
        )

    def customer(
        self,
        cid: str = "c1",
        *,
        locale: str = "zh-CN",
        channels: Sequence[str] | None = None,
        phone: str | None = PHONE,
        email: str | None = EMAIL,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(customers).values(id=cid, locale=locale, created_at=NOW))
            if channels is not None:
                conn.execute(
                    insert(customer_contacts).values(
                        customer_id=cid, phone=phone, email=email, channels=json.dumps(channels)
                    )
                )

    def order(self, oid: str = "O-1", cid: str = "c1", currency: str = "CNY") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(orders).values(
                    id=oid,
                    customer_id=cid,
                    currency=currency,
                    status="delivered",
                    document="{}",
                    content_hash="h",
                    goods_units=1,
                    ingested_at=NOW,
                )
            )

    def delivered(self, key: str) -> set[str]:
        d = notification_deliveries.c
        with self.engine.connect() as conn:
            return set(conn.execute(select(d.channel).where(d.key == key)).scalars())

    def inbox_rows(self, customer_id: str = "c1") -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(inbox_messages)
                    .where(inbox_messages.c.customer_id == customer_id)
                ).scalar_one()
            )

    @property
    def mails(self) -> list[Any]:
        return self.server.mailbox.messages


@pytest.fixture
def setup(engine: Engine, smtp_server: SmtpServer) -> Setup:
    return Setup(engine, smtp_server)


def refunded(locale: str = "zh-CN", **params: Any) -> dict[str, Any]:
    return {
        "customer_id": "c1",
        "locale": locale,
        "order_id": "O-1",
        "refund_id": "R-1",
        "template": "refund.refunded",
        "params": {"amount": 123450, "currency": "CNY", **params},
    }


def test_without_preferences_only_the_inbox(setup: Setup) -> None:
    setup.customer()  # no contact row: the default ["in_app"]
    setup.notifier.send(refunded(), key="notify:R-1:refunded:a1")
    assert setup.inbox_rows() == 1
    assert setup.sms.attempts == 0 and setup.mails == []
    assert setup.delivered("notify:R-1:refunded:a1") == {"in_app"}


def test_every_chosen_channel_gets_the_rendered_message(setup: Setup) -> None:
    setup.customer(channels=["sms", "email", "in_app"])
    key = "notify:R-1:refunded:a1"
    setup.notifier.send(refunded(), key=key)
    text = "订单O-1的退款¥1,234.50已退回原支付方式，请注意查收。"
    [sms] = setup.sms.sent
    assert (sms.phone, sms.text, sms.key) == (PHONE, text, key)
    [mail] = setup.mails
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "退款已到账"
    assert mail.get_content().strip() == text
    assert mail["Message-ID"] == message_id_for(key, "refundry.test")
    assert setup.inbox_rows() == 1
    assert setup.delivered(key) == {"sms", "email", "in_app"}


def test_preferences_are_honoured(setup: Setup) -> None:
    setup.customer(channels=["email"], locale="en")
    setup.notifier.send(refunded(locale="en"), key="k1")
    assert setup.inbox_rows() == 0 and setup.sms.attempts == 0
    [mail] = setup.mails
    assert mail["Subject"] == "Your refund has been completed"
    assert "CNY 1,234.50" in mail.get_content()
    assert setup.delivered("k1") == {"email"}


def test_an_empty_choice_sends_nothing(setup: Setup) -> None:
    setup.customer(channels=[])
    setup.notifier.send(refunded(), key="k1")
    assert setup.inbox_rows() == 0 and setup.sms.attempts == 0 and setup.mails == []


def test_unknown_and_repeated_channels_are_ignored(setup: Setup) -> None:
    setup.customer(channels=["push", "sms", "sms"])
    setup.notifier.send(refunded(), key="k1")
    assert setup.sms.attempts == 1
    assert setup.delivered("k1") == {"sms"}


def test_delivered_once_even_when_sent_twice_with_the_same_key(setup: Setup) -> None:
    setup.customer(channels=["in_app", "sms", "email"])
    for _ in range(2):
        setup.notifier.send(refunded(), key="notify:R-1:refunded:a1")
    assert setup.sms.attempts == 1  # the second call did not even reach the provider
    assert len(setup.mails) == 1
    assert setup.inbox_rows() == 1
    # another key is another message
    setup.notifier.send(refunded(), key="notify:R-1:refunded:a2")
    assert setup.sms.attempts == 2 and len(setup.mails) == 2 and setup.inbox_rows() == 2


def test_a_failing_channel_is_retried_without_resending_the_others(setup: Setup) -> None:
    setup.customer(channels=["email", "sms", "in_app"])
    setup.server.mailbox.fail_next = 1  # the mail server answers 451 once
    with pytest.raises(DeliveryFailed) as err:
        setup.notifier.send(refunded(), key="k1")
    assert set(err.value.failures) == {"email"}
    assert err.value.code == "notification.delivery_failed"
    # the channels after the failing one were still tried and recorded
    assert setup.sms.attempts == 1 and setup.inbox_rows() == 1
    assert setup.delivered("k1") == {"sms", "in_app"}
    assert setup.mails == []

    setup.notifier.send(refunded(), key="k1")  # the relay's retry
    assert len(setup.mails) == 1
    assert setup.sms.attempts == 1 and setup.inbox_rows() == 1
    assert setup.delivered("k1") == {"sms", "in_app", "email"}


def test_a_chosen_channel_without_an_address_is_skipped(setup: Setup) -> None:
    setup.customer(channels=["sms", "email", "in_app"], phone=None)
    setup.notifier.send(refunded(), key="k1")
    assert setup.sms.attempts == 0
    assert len(setup.mails) == 1 and setup.inbox_rows() == 1
    assert setup.delivered("k1") == {"email", "in_app"}


def test_currency_comes_from_the_order_when_params_lack_it(setup: Setup) -> None:
    setup.customer(channels=["sms"])
    setup.order()
    message = refunded()
    del message["params"]["currency"]
    setup.notifier.send(message, key="k1")
    assert "¥1,234.50" in setup.sms.sent[0].text


def test_campaign_names_and_case_ids_reach_the_text(setup: Setup) -> None:
    setup.customer(channels=["sms"])
    setup.notifier.send(
        {
            "customer_id": "c1",
            "locale": "zh-CN",
            "order_id": "O-1",
            "refund_id": "R-1",
            "template": "eligibility.restored",
            "params": {"campaign_id": "C-1", "campaign_name": "满1000元返200元"},
        },
        key="k1",
    )
    setup.notifier.send(
        {
            "customer_id": "c1",
            "locale": "zh-CN",
            "order_id": "O-1",
            "refund_id": None,
            "case_id": "CS-9",  # only on the message: it fills the params
            "template": "case.approved",
            "params": {},
        },
        key="k2",
    )
    texts = [m.text for m in setup.sms.sent]
    assert texts == [
        "您的“满1000元返200元”活动资格已恢复，请继续享受优惠。",
        "您的售后申请（CS-9）已通过审核。",
    ]


def test_identity_code_goes_by_sms_only(setup: Setup) -> None:
    setup.customer(channels=["in_app", "email"])
    message = {
        "customer_id": "c1",
        "locale": "zh-CN",
        "order_id": None,
        "refund_id": None,
        "template": "identity.code",
        "params": {"code": "482913", "minutes": 5},
    }
    setup.notifier.send(message, key="otp:1")
    [sms] = setup.sms.sent
    assert sms.text == "您的验证码为482913，5分钟内有效，请勿告诉他人。"
    assert setup.inbox_rows() == 0 and setup.mails == []
    assert setup.delivered("otp:1") == {"sms"}


def test_identity_code_without_a_phone_fails(setup: Setup) -> None:
    setup.customer(channels=["in_app"], phone=None)
    message = {
        "customer_id": "c1",
        "locale": "en",
        "template": "identity.code",
        "params": {"code": "1", "minutes": 5},
    }
    with pytest.raises(DeliveryFailed):
        setup.notifier.send(message, key="otp:1")
    assert setup.delivered("otp:1") == set()


def test_an_unrenderable_message_sends_nothing(setup: Setup) -> None:
    setup.customer(channels=["in_app", "sms", "email"])
    message = refunded()
    message["template"] = "refund.teleported"
    with pytest.raises(UnknownTemplate):
        setup.notifier.send(message, key="k1")
    assert setup.inbox_rows() == 0 and setup.sms.attempts == 0 and setup.mails == []
    assert setup.delivered("k1") == set()


def test_through_the_relay(setup: Setup) -> None:
    """The outbox relay retries a message whose email failed; SMS and inbox get it once."""
    setup.customer(channels=["in_app", "sms", "email"])
    clock = ManualClock(NOW)
    with setup.engine.begin() as conn:
        enqueue(conn, topic="notify", key="notify:R-1:0", payload=refunded(), at=NOW)
    relay = Relay(
        engine=setup.engine,
        gateway=SandboxGateway(clock=clock, seed=1),
        notifier=setup.notifier,
        publisher=RecordingPublisher(),
        clock=clock,
    )
    setup.server.mailbox.fail_next = 1
    assert relay.run_once() == 1
    with setup.engine.connect() as conn:
        row = conn.execute(select(outbox.c.status, outbox.c.last_error)).one()
    assert row.status == "pending" and "451" in row.last_error
    clock.advance(timedelta(minutes=1))
    assert relay.drain() == 1
    with setup.engine.connect() as conn:
        assert conn.execute(select(outbox.c.status)).scalar_one() == "done"
    assert setup.sms.attempts == 1 and setup.inbox_rows() == 1 and len(setup.mails) == 1
