"""The one typed settings object every front end is built from (``refundry.bootstrap``).

Where a value comes from, the later wins: the defaults below, an optional TOML file
(``REFUNDRY_CONFIG`` or ``--config``), the environment (``REFUNDRY_<NAME>``, e.g.
``REFUNDRY_GATEWAY_API_KEY``), then the command line's flags. docs/configuration.md lists every
setting; a value that does not parse is a :class:`SettingsError` whose message names the setting
in one line (the CLI prints it and exits 2).

Adapters are chosen by name. Outside dev mode nothing falls back to a sandbox silently: each of
gateway, carrier, sms, email and events must be named (a real implementation, or ``sandbox``
explicitly, which logs a warning at start), and the token secret and each webhook sender's
secret must be set (``refundry.bootstrap.check_production``).
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from refundry.domain.errors import RefundryError
from refundry.services.audit.keys import DEV_AUDIT_KEY, AuditKeys

__all__ = ["DEV_SECRET", "Settings", "SettingsError", "load_settings"]

# Signs tokens in dev mode only; the server refuses to start with it outside dev mode.
DEV_SECRET = "refundry-development-secret"

GatewayChoice = Literal["http", "sandbox"]
CarrierChoice = Literal["http", "sandbox"]
SmsChoice = Literal["sandbox", "twilio"]
EmailChoice = Literal["smtp", "sandbox", "off"]
EventsChoice = Literal["redis", "sandbox"]


# The TOML file load_settings reads under the environment (a context variable, not a field:
# where the settings come from is not itself a setting).
_config_file: ContextVar[Path | None] = ContextVar("refundry_config_file", default=None)


class SettingsError(RefundryError):
    """A setting that is missing or does not parse; the message names it."""

    code = "settings.invalid"


class Settings(BaseSettings):
    """Every setting of refundry, with its default (docs/configuration.md)."""

    model_config = SettingsConfigDict(
        env_prefix="REFUNDRY_", extra="forbid", frozen=True, validate_default=True
    )

    # Mode and store
    dev: bool = False  # sandboxes and a development secret allowed; never in production
    database_url: str | None = None  # None: sqlite:///refundry.sqlite
    policy: Path | None = None  # policy TOML (refund + case process); None: SPEC defaults
    policy_text: str | None = None  # the policy itself (embedding, tests); wins over policy

    # Secrets
    secret: SecretStr | None = None  # signs bearer tokens, keys one-time codes
    token_key_id: str = "k1"  # written into each token: which secret signed it
    previous_secrets: dict[str, SecretStr] = Field(default_factory=dict)  # key id -> secret
    gateway_webhook_secret: SecretStr | None = None  # the gateway's webhooks to us
    carrier_webhook_secret: SecretStr | None = None  # the carrier's webhooks to us
    webhook_tolerance_seconds: Annotated[int, Field(ge=1)] = 300
    audit_key: SecretStr | None = None  # signs the audit log (HMAC); never in the database
    audit_key_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")] = "a1"
    audit_previous_keys: dict[str, SecretStr] = Field(default_factory=dict)  # id -> old key
    audit_unkeyed_through: Annotated[int, Field(ge=0)] = 0  # last entry from before 0010

    # Adapters (None: not named; allowed in dev mode only, where it means the sandbox)
    gateway: GatewayChoice | None = None
    gateway_url: str | None = None
    gateway_api_key: SecretStr | None = None
    carrier: CarrierChoice | None = None
    carrier_url: str | None = None
    carrier_api_key: SecretStr | None = None
    sms: SmsChoice | None = None
    twilio_account_sid: str | None = None  # sms = "twilio": the account (AC…)
    twilio_auth_token: SecretStr | None = None  # … its auth token
    twilio_sender: str | None = None  # a Twilio number, an alphanumeric id or a service MG…
    twilio_api_url: str = "https://api.twilio.com"
    email: EmailChoice | None = None
    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str | None = None
    events: EventsChoice | None = None
    redis_url: str | None = None

    # The cases' photos (docs/configuration.md, "Photos"): local files in photo_dir (None: a
    # refundry-photos directory beside the SQLite database, or in the working directory)
    photo_dir: Path | None = None
    photo_max_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 8 * 1024 * 1024
    photo_max_per_case: Annotated[int, Field(ge=1, le=20)] = 6  # of each kind

    # The pages write times in the shop's zone (an IANA name: Asia/Shanghai, Europe/Paris)
    display_timezone: str = "Asia/Shanghai"
    # orders (GET /v1/orders/{id}) and customers' order pages kept in memory per serving
    # process while the customer's data has not moved (refundry/api/kept.py); 0: none kept
    page_cache_entries: Annotated[int, Field(ge=0, le=1_000_000)] = 10_000

    # Passkeys (WebAuthn, docs/identity.md): the relying party is the shop's site
    webauthn_rp_id: str = "localhost"  # the domain passkeys are made for (no scheme or port)
    webauthn_rp_name: str = "refundry"  # the name the browser shows when making one
    # the exact origins (scheme://host[:port]) the pages are served from
    webauthn_origins: list[str] = Field(default_factory=lambda: ["http://localhost:8000"])

    # HTTP
    # threads a serving process runs its routes' store work on at once (docs/configuration.md:
    # anyio's default of 40 only queued on the GIL)
    request_threads: Annotated[int, Field(ge=1, le=256)] = 4
    max_body_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    case_rate_limit: Annotated[int, Field(ge=1)] = 10  # cases a customer may open per window
    case_rate_window_seconds: Annotated[int, Field(ge=1)] = 3600
    idempotency_ttl_hours: Annotated[int, Field(ge=1)] = (
        48  # Idempotency-Key answers kept this long
    )
    # a request holding an Idempotency-Key that has not answered after this long is taken to
    # have died: a retry with the key takes it over (or rebuilds its committed answer)
    idempotency_lease_seconds: Annotated[int, Field(ge=1, le=3600)] = 10

    # Webhooks to the shop (docs/webhooks.md): endpoints are registered by an admin
    webhook_delivery: Literal["http", "sandbox"] = "http"  # sandbox: nothing is sent
    webhook_timeout_seconds: Annotated[int, Field(ge=1, le=60)] = 10  # per attempt
    webhook_retry_base_seconds: Annotated[int, Field(ge=1)] = 60  # the first retry's step
    webhook_retry_cap_seconds: Annotated[int, Field(ge=1)] = 12 * 3600  # the longest step
    webhook_max_attempts: Annotated[int, Field(ge=1, le=50)] = 12  # per delivery and round
    # an endpoint failing this many attempts in a row (any event) is disabled
    webhook_disable_after: Annotated[int, Field(ge=1)] = 100
    webhook_secret_overlap_hours: Annotated[int, Field(ge=0)] = 24  # old secret still signs
    webhook_retention_days: Annotated[int, Field(ge=1)] = 30  # events kept for log and replay

    # Operations
    worker_heartbeat_max_age_seconds: Annotated[int, Field(ge=1)] = 60  # /readyz
    # The relay (services/outbox/relay.py): gateway refunds sent at once per worker process
    # (also the HTTP gateway client's pool of connections), and messages claimed per round
    relay_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    relay_batch: Annotated[int, Field(ge=1, le=5000)] = 100
    relay_answers_per_transaction: Annotated[int, Field(ge=1, le=1000)] = 1
    relay_message_concurrency: Annotated[int, Field(ge=1, le=64)] = 8

    # Logs and traces
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    tracing: Literal["off", "otlp"] = "off"  # otlp: OpenTelemetry spans (the otel extra)
    tracing_endpoint: str | None = None  # OTLP/HTTP; None: http://localhost:4318/v1/traces

    @field_validator("display_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError("an IANA time zone name (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("webauthn_rp_id")
    @classmethod
    def _rp_id(cls, value: str) -> str:
        if not value or "/" in value or ":" in value or value != value.strip().lower():
            raise ValueError("a lower-case domain without scheme or port (e.g. shop.example)")
        return value

    @field_validator("webauthn_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("https", "http") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        if not value:
            raise ValueError("at least one origin")
        return value

    @field_validator("token_key_id")
    @classmethod
    def _key_id(cls, value: str) -> str:
        if not value or not value.isascii() or not value.replace("-", "").isalnum():
            raise ValueError("letters, digits and '-' only")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags over the environment over the TOML file; no .env or secrets directory
        path = _config_file.get()
        if path is None:
            return init_settings, env_settings
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path)

    def token_secrets(self) -> dict[str, bytes]:
        """Key id -> secret, the current one included: every secret a token may be signed with."""
        keys = {kid: s.get_secret_value().encode() for kid, s in self.previous_secrets.items()}
        keys[self.token_key_id] = self.signing_secret()
        return keys

    def audit_keys(self) -> AuditKeys:
        """The audit log's keys (services/audit/keys.py): the development key in dev mode
        without ``audit_key`` (check_production refuses that outside dev mode)."""
        keys = {kid: s.get_secret_value().encode() for kid, s in self.audit_previous_keys.items()}
        if self.dev:
            keys.setdefault("dev", DEV_AUDIT_KEY)
        current = "dev"
        if self.audit_key is not None:
            current = self.audit_key_id
            keys[current] = self.audit_key.get_secret_value().encode()
        return AuditKeys(current, keys, self.audit_unkeyed_through)

    def photo_directory(self) -> Path:
        """Where the local photo storage keeps its files: ``photo_dir``, else
        ``refundry-photos`` beside the SQLite database file (the working directory for
        PostgreSQL or an in-memory database)."""
        if self.photo_dir is not None:
            return self.photo_dir
        from refundry.store.engine import database_url

        url = database_url(self.database_url)
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            path = url.removeprefix("sqlite:///").split("?", 1)[0]
            if path:
                return Path(path).parent / "refundry-photos"
        return Path("refundry-photos")

    def signing_secret(self) -> bytes:
        if self.secret is None:
            return DEV_SECRET.encode()
        return self.secret.get_secret_value().encode()

    def policy_source(self) -> str | None:
        """The policy's TOML text, or None for SPEC's defaults."""
        if self.policy_text is not None:
            return self.policy_text
        if self.policy is None:
            return None
        try:
            return self.policy.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(
                f"policy: {self.policy}: cannot read ({exc.strerror})", field="policy"
            ) from None


def _one_line(error: ValidationError) -> SettingsError:
    first = error.errors()[0]
    name = ".".join(str(p) for p in first["loc"]) or "settings"
    if first["type"] == "extra_forbidden":
        return SettingsError(f"{name}: not a setting (docs/configuration.md)", field=name)
    shown = first.get("input")
    value = f" (got {shown!r})" if isinstance(shown, str | int | float) else ""
    env = f"REFUNDRY_{name.upper()}"
    return SettingsError(f"{name} ({env}): {first['msg']}{value}", field=name)


def load_settings(
    overrides: dict[str, Any] | None = None, *, config: Path | None = None
) -> Settings:
    """The settings from ``overrides`` (flags; ``None`` values are left out, so an unset flag
    does not hide the environment), the environment, then the TOML file ``config`` (default
    ``$REFUNDRY_CONFIG``), the earlier winning."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if config is None and os.environ.get("REFUNDRY_CONFIG"):
        config = Path(os.environ["REFUNDRY_CONFIG"])
    if config is not None:
        try:
            tomllib.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(
                f"config: {config}: cannot read ({exc.strerror})", field="config"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(
                f"config: {config}: not valid TOML: {exc}", field="config"
            ) from None
    token = _config_file.set(config)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise _one_line(exc) from None
    finally:
        _config_file.reset(token)
