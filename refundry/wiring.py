"""Building the running parts from configuration: one place where adapters meet services."""

from __future__ import annotations

from datetime import timedelta

from refundry.adapters.clock import utc_now
from refundry.adapters.events import RecordingPublisher
from refundry.adapters.gateway_http import HttpGateway
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.adapters.inbox import InboxNotifier
from refundry.adapters.logistics_http import HttpLogistics
from refundry.adapters.logistics_sandbox import SandboxLogistics
from refundry.adapters.sms import SandboxSms
from refundry.domain.policy import Policy, policy_from_toml
from refundry.domain.process_policy import ProcessPolicy, process_policy_from_toml
from refundry.notifications.channels import ChannelNotifier
from refundry.services.case_open import CaseDesk
from refundry.services.ports import EmailSender, EventPublisher, LogisticsProvider, PaymentGateway
from refundry.services.relay import Relay
from refundry.store.engine import make_engine
from refundry.worker import Worker

__all__ = ["build_worker", "policies"]


class _NoEmail:
    """Email is off unless an SMTP server is configured: sending is a no-op."""

    def send(self, *, to: str, subject: str, body: str, key: str) -> None:
        return None


def policies(text: str | None) -> tuple[Policy, ProcessPolicy]:
    if not text:
        return Policy(), ProcessPolicy()
    return policy_from_toml(text), process_policy_from_toml(text)


def build_worker(
    *,
    url: str | None,
    name: str,
    gateway_url: str | None,
    logistics_url: str | None,
    smtp: str | None,
    redis_url: str | None,
    policy_text: str | None,
) -> Worker:
    engine = make_engine(url)
    policy, process = policies(policy_text)
    gateway: PaymentGateway = (
        HttpGateway(gateway_url)
        if gateway_url
        else SandboxGateway(clock=utc_now, confirm_after=timedelta(0))
    )
    logistics: LogisticsProvider = (
        HttpLogistics(logistics_url) if logistics_url else SandboxLogistics(utc_now)
    )
    email: EmailSender = _NoEmail()
    if smtp:
        from refundry.adapters.email import SmtpEmailSender

        host, _, port = smtp.partition(":")
        email = SmtpEmailSender(host, int(port or 25), sender="refundry@localhost")
    publisher: EventPublisher = RecordingPublisher()
    if redis_url:
        from refundry.adapters.redis_events import RedisStreamPublisher

        publisher = RedisStreamPublisher(redis_url)
    notifier = ChannelNotifier(engine, sms=SandboxSms(), email=email, inbox=InboxNotifier(engine))
    relay = Relay(
        engine=engine,
        gateway=gateway,
        notifier=notifier,
        publisher=publisher,
        clock=utc_now,
        worker=name,
        logistics=logistics,
    )
    return Worker(desk=CaseDesk(engine, policy, process), relay=relay, clock=utc_now, name=name)
