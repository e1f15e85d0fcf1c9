"""The one place refundry's running parts are built: from a :class:`~refundry.settings.Settings`
to the engine, the policies, every adapter, the case desk, the notifier and the relay.

``refundry serve`` (each uvicorn worker, through ``refundry.api.serve.app_factory``),
``refundry worker``, every CLI command, ``make demo`` and the test fixtures call :func:`build`;
nothing else constructs an adapter. Outside dev mode :func:`check_production` refuses settings
that would run with a public secret or a silent sandbox, and :func:`check_schema` refuses a
database that is not at the newest migration.

Tests inject their own adapters (a sandbox gateway they drive, a fixed clock) through
:func:`build`'s keyword arguments, never through the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine

from refundry.adapters.clock import utc_now
from refundry.adapters.shop_webhooks import HookPoster, HttpHookPoster, SandboxHookPoster
from refundry.domain.errors import RefundryError
from refundry.domain.photos import PhotoLimits
from refundry.domain.policy import Policy, policy_from_toml
from refundry.domain.process_policy import ProcessPolicy, process_policy_from_toml
from refundry.notifications.channels import ChannelNotifier
from refundry.services.audit.keys import AuditKeys, attach_keys
from refundry.services.cases.opening import CaseDesk
from refundry.services.outbox.relay import Relay
from refundry.services.passkeys import RelyingParty
from refundry.services.ports import (
    EmailSender,
    EventPublisher,
    LogisticsProvider,
    PaymentGateway,
    PhotoStorage,
    SmsSender,
)
from refundry.services.shop_webhooks.delivery import HookSender, RetrySchedule
from refundry.settings import DEV_SECRET, Settings
from refundry.store.engine import database_url, make_engine
from refundry.store.loop_reads import LoopReads

__all__ = [
    "ADAPTERS",
    "Runtime",
    "StartupError",
    "audit_keys",
    "build",
    "check_production",
    "check_schema",
    "policies",
    "preflight",
    "uses_sqlite",
]

log = structlog.get_logger("refundry.bootstrap")

# The adapters a deployment must name outside dev mode (settings field -> what it talks to).
ADAPTERS = {
    "gateway": "payment gateway",
    "carrier": "carrier (return labels, pickups)",
    "sms": "SMS provider",
    "email": "email",
    "events": "domain events",
}
# Webhook secrets used in dev mode only, distinct per sender as in production.
_DEV_WEBHOOK = {
    "gateway": "refundry-dev-gateway-webhook",
    "carrier": "refundry-dev-carrier-webhook",
}


class StartupError(RefundryError):
    """Settings or a database the service refuses to start with; the message says what to do."""

    code = "startup.refused"


def policies(text: str | None) -> tuple[Policy, ProcessPolicy]:
    if not text:
        return Policy(), ProcessPolicy()
    return policy_from_toml(text), process_policy_from_toml(text)


def check_production(settings: Settings) -> None:
    """Refuse what must never run outside dev mode, listing every problem at once."""
    problems = _adapter_problems(settings)
    if settings.dev:
        if problems:
            raise StartupError("; ".join(problems))
        return
    secret = settings.secret.get_secret_value() if settings.secret else ""
    if not secret or secret == DEV_SECRET:
        problems.append("secret (REFUNDRY_SECRET) is not set: it signs every bearer token")
    webhook = {
        "gateway": settings.gateway_webhook_secret,
        "carrier": settings.carrier_webhook_secret,
    }
    for sender, value in webhook.items():
        if value is None or not value.get_secret_value():
            env = f"REFUNDRY_{sender.upper()}_WEBHOOK_SECRET"
            problems.append(f"{sender}_webhook_secret ({env}) is not set")
    plain = [o for o in settings.webauthn_origins if not _secure_origin(o)]
    if plain:
        problems.append(
            "webauthn_origins must be https (or a localhost address): " + ", ".join(plain)
        )
    if settings.audit_key is None or not settings.audit_key.get_secret_value():
        problems.append("audit_key (REFUNDRY_AUDIT_KEY) is not set: it signs the audit log")
    given = [v.get_secret_value() for v in webhook.values() if v is not None]
    if settings.audit_key is not None and settings.audit_key.get_secret_value():
        given.append(settings.audit_key.get_secret_value())
    if (secret and secret in given) or len(set(given)) < len(given):
        problems.append(
            "the token secret, the audit key and each webhook sender's secret must all differ"
        )
    unnamed = [name for name in ADAPTERS if getattr(settings, name) is None]
    if unnamed:
        problems.append(
            "name every adapter, a real one or 'sandbox' explicitly: "
            + ", ".join(f"{n} (REFUNDRY_{n.upper()})" for n in unnamed)
        )
    if problems:
        raise StartupError(
            "refusing to start outside dev mode: " + "; ".join(problems) + " (or pass --dev)"
        )


def _secure_origin(origin: str) -> bool:
    """Browsers make passkeys on https pages, and on http only for localhost."""
    host = origin.partition("://")[2].rsplit(":", 1)[0]
    return origin.startswith("https://") or host in ("localhost", "127.0.0.1", "[::1]")


def _adapter_problems(settings: Settings) -> list[str]:
    """A real adapter needs its address and credentials, in dev mode too."""
    needs = {
        ("gateway", "http"): ("gateway_url", "gateway_api_key"),
        ("carrier", "http"): ("carrier_url", "carrier_api_key"),
        ("email", "smtp"): ("smtp_host", "smtp_sender"),
        ("events", "redis"): ("redis_url",),
        ("sms", "twilio"): ("twilio_account_sid", "twilio_auth_token", "twilio_sender"),
    }
    out = []
    for (adapter, choice), fields in needs.items():
        if getattr(settings, adapter) != choice:
            continue
        missing = [f"{f} (REFUNDRY_{f.upper()})" for f in fields if not getattr(settings, f)]
        if missing:
            out.append(f"{adapter} = {choice!r} needs " + ", ".join(missing))
    if (settings.smtp_username is None) != (settings.smtp_password is None):
        out.append("smtp_username and smtp_password go together")
    return out


def audit_keys(settings: Settings) -> AuditKeys:
    """The keys that sign the audit log; outside dev mode ``audit_key`` must be set (a command
    that writes or verifies audit entries refuses to run without it)."""
    if not settings.dev and settings.audit_key is None:
        raise StartupError(
            "audit_key (REFUNDRY_AUDIT_KEY) is not set: it signs the audit log (or pass --dev)"
        )
    return settings.audit_keys()


def check_schema(engine: Engine) -> None:
    """Refuse a database whose schema is not at the newest migration."""
    from refundry.store.migrate import schema_revisions

    current, head = schema_revisions(engine)
    if current != head:
        where = "was never migrated" if current is None else f"is at revision {current}"
        raise StartupError(
            f"the database schema {where}, not the newest ({head}): run `refundry db upgrade`"
        )


def preflight(settings: Settings) -> None:
    """What a server process would refuse, checked once before any starts (``refundry
    serve``): the production checks, the policy file, the schema."""
    check_production(settings)
    settings.policy_source()
    if settings.tracing != "off":
        from refundry.tracing import tracer_provider

        tracer_provider(endpoint=settings.tracing_endpoint).shutdown()  # the extra is there
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()


def uses_sqlite(settings: Settings) -> bool:
    return database_url(settings.database_url).startswith("sqlite")


@dataclass(slots=True)
class Runtime:
    """Everything a front end needs, built once per process."""

    settings: Settings
    engine: Engine
    policy: Policy
    process: ProcessPolicy
    desk: CaseDesk
    gateway: PaymentGateway
    logistics: LogisticsProvider
    sms: SmsSender
    email: EmailSender
    publisher: EventPublisher
    notifier: ChannelNotifier
    clock: Callable[[], datetime]
    sandboxes: tuple[str, ...] = field(default=())  # adapters running as their sandbox
    tracer: Any = None  # the OpenTelemetry tracer provider, when tracing is on (tracing.py)
    hook_poster: HookPoster = field(default_factory=SandboxHookPoster)  # webhooks to the shop
    photos: PhotoStorage | None = None  # the cases' photos (None: built from the settings)
    # one-row reads awaited on the server's event loop (PostgreSQL; opened by the app's lifespan)
    loop_reads: LoopReads = field(init=False)

    def __post_init__(self) -> None:
        self.loop_reads = LoopReads(self.engine)
        if self.photos is None:
            from refundry.adapters.photos import LocalPhotoStorage

            self.photos = LocalPhotoStorage(self.settings.photo_directory())

    @property
    def photo_storage(self) -> PhotoStorage:
        assert self.photos is not None  # set by __post_init__
        return self.photos

    def webhook_secret(self, sender: str) -> bytes:
        """The secret that authenticates ``sender``'s webhooks (gateway | carrier)."""
        value = getattr(self.settings, f"{sender}_webhook_secret")
        if value is None:
            return _DEV_WEBHOOK[sender].encode()  # dev mode (check_production refused it else)
        return bytes(value.get_secret_value().encode())  # getattr: Any to mypy

    def relay(self, *, name: str = "worker") -> Relay:
        return Relay(
            engine=self.engine,
            gateway=self.gateway,
            notifier=self.notifier,
            publisher=self.publisher,
            clock=self.clock,
            worker=name,
            logistics=self.logistics,
            concurrency=self.settings.relay_concurrency,
            batch=self.settings.relay_batch,
            answers_per_transaction=self.settings.relay_answers_per_transaction,
            message_concurrency=self.settings.relay_message_concurrency,
        )

    def hook_sender(self, *, name: str = "worker") -> HookSender:
        """The sender of the shop's webhooks, its schedule and limits from the settings."""
        s = self.settings
        return HookSender(
            engine=self.engine,
            poster=self.hook_poster,
            clock=self.clock,
            schedule=RetrySchedule(
                base=timedelta(seconds=s.webhook_retry_base_seconds),
                cap=timedelta(seconds=s.webhook_retry_cap_seconds),
                max_attempts=s.webhook_max_attempts,
            ),
            disable_after=s.webhook_disable_after,
            worker=name,
            retention=timedelta(days=s.webhook_retention_days),
        )

    def dispose(self) -> None:
        self.engine.dispose()


def build(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    engine: Engine | None = None,
    gateway: PaymentGateway | None = None,
    logistics: LogisticsProvider | None = None,
    sms: SmsSender | None = None,
    email: EmailSender | None = None,
    publisher: EventPublisher | None = None,
    hook_poster: HookPoster | None = None,
    photos: PhotoStorage | None = None,
    production_checks: bool = True,
    schema_check: bool = True,
    span_exporter: Any = None,
) -> Runtime:
    """Build the runtime. The keyword adapters replace the ones the settings name (tests)."""
    if production_checks:
        check_production(settings)
    engine = engine or make_engine(settings.database_url)
    attach_keys(engine, audit_keys(settings))
    if schema_check:
        check_schema(engine)
    policy, process = policies(settings.policy_source())
    sandboxes: list[str] = []

    def chosen(name: str) -> str:
        value = getattr(settings, name) or "sandbox"
        if value == "sandbox":
            sandboxes.append(name)
        return str(value)

    try:
        gateway = gateway or _gateway(settings, chosen("gateway"))
        logistics = logistics or _carrier(settings, chosen("carrier"), clock)
    except ValueError as exc:  # a URL the HTTP client cannot use
        raise StartupError(f"gateway_url / carrier_url: {exc}") from None
    if sms is None:
        try:
            sms = _sms(settings, chosen("sms"))
        except ValueError as exc:  # a URL the HTTP client cannot use
            raise StartupError(f"twilio_api_url: {exc}") from None
    email = email or _email(settings, chosen("email"))
    publisher = publisher or _events(settings, chosen("events"))
    if hook_poster is None:
        hook_poster = (
            SandboxHookPoster()
            if settings.webhook_delivery == "sandbox"
            else HttpHookPoster(
                timeout=settings.webhook_timeout_seconds, public_only=not settings.dev
            )
        )
    from refundry.adapters.inbox import InboxNotifier

    notifier = ChannelNotifier(
        engine, sms=sms, email=email, inbox=InboxNotifier(engine), clock=clock
    )
    desk = CaseDesk(
        engine,
        policy,
        process,
        identity_secret=settings.signing_secret(),
        relying_party=RelyingParty(
            settings.webauthn_rp_id, settings.webauthn_rp_name, tuple(settings.webauthn_origins)
        ),
        photo_limits=PhotoLimits(settings.photo_max_bytes, settings.photo_max_per_case),
    )
    tracer = _tracer(settings, engine, span_exporter)
    if settings.dev:
        log.warning("dev mode: sandboxes and development secrets allowed; never in production")
    for name in sandboxes:
        if not settings.dev:
            log.warning("adapter is a sandbox: nothing reaches the outside world", adapter=name)
    return Runtime(
        settings=settings,
        engine=engine,
        policy=policy,
        process=process,
        desk=desk,
        gateway=gateway,
        logistics=logistics,
        sms=sms,
        email=email,
        publisher=publisher,
        notifier=notifier,
        clock=clock,
        sandboxes=tuple(sandboxes),
        tracer=tracer,
        hook_poster=hook_poster,
        photos=photos,
    )


def _tracer(settings: Settings, engine: Engine, exporter: Any) -> Any:
    """The tracer provider when ``tracing`` is on (its SQL spans wired to ``engine``), else
    None; ``exporter`` replaces OTLP (tests)."""
    if settings.tracing == "off":
        return None
    from refundry.tracing import trace_engine, tracer_provider

    provider = tracer_provider(endpoint=settings.tracing_endpoint, exporter=exporter)
    trace_engine(engine, provider)
    return provider


def _gateway(settings: Settings, choice: str) -> PaymentGateway:
    if choice == "http":
        from refundry.adapters.gateway_http import HttpGateway

        assert settings.gateway_url and settings.gateway_api_key
        return HttpGateway(
            settings.gateway_url,
            api_key=settings.gateway_api_key.get_secret_value(),
            max_connections=settings.relay_concurrency,
        )
    from refundry.adapters.gateway_sandbox import SandboxGateway

    return SandboxGateway(clock=utc_now, confirm_after=timedelta(0))


def _carrier(settings: Settings, choice: str, clock: Callable[[], datetime]) -> LogisticsProvider:
    if choice == "http":
        from refundry.adapters.logistics_http import HttpLogistics

        assert settings.carrier_url and settings.carrier_api_key
        return HttpLogistics(
            settings.carrier_url, api_key=settings.carrier_api_key.get_secret_value()
        )
    from refundry.adapters.logistics_sandbox import SandboxLogistics

    return SandboxLogistics(clock)


def _sms(settings: Settings, choice: str) -> SmsSender:
    if choice == "twilio":
        from refundry.adapters.sms_twilio import TwilioSms

        assert settings.twilio_account_sid and settings.twilio_auth_token
        assert settings.twilio_sender
        return TwilioSms(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            sender=settings.twilio_sender,
            api_url=settings.twilio_api_url,
        )
    from refundry.adapters.sms import SandboxSms

    return SandboxSms()


def _email(settings: Settings, choice: str) -> EmailSender:
    if choice == "smtp":
        from refundry.adapters.email import SmtpEmailSender

        assert settings.smtp_host and settings.smtp_sender
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpEmailSender(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=password,
        )
    if choice == "off":
        return _NoEmail()
    from refundry.adapters.email import SandboxEmail

    return SandboxEmail()


class _NoEmail:
    """``email = "off"``: the shop sends no email; the other channels still run."""

    def send(self, *, to: str, subject: str, body: str, key: str) -> None:
        return None


def _events(settings: Settings, choice: str) -> EventPublisher:
    if choice == "redis":
        from refundry.adapters.redis_events import RedisStreamPublisher

        assert settings.redis_url
        return RedisStreamPublisher(settings.redis_url)
    from refundry.adapters.events import RecordingPublisher

    return RecordingPublisher()
