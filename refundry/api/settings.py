"""API settings, from the environment (``REFUNDRY_*``) or given directly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from refundry.services.housekeeping import API_KEY_TTL

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None  # None: REFUNDRY_DATABASE_URL or ./refundry.sqlite
    secret: bytes = b"refundry-development-secret"  # signs tokens, keys one-time codes
    webhook_secret: bytes = b"refundry-webhook-secret"  # gateway and logistics webhooks
    webhook_tolerance_seconds: int = 300
    max_body_bytes: int = 256 * 1024
    case_rate_limit: int = 10  # cases a customer may open per window
    case_rate_window_seconds: int = 3600
    # Idempotency-Key answers kept this long; `refundry worker` deletes older ones.
    idempotency_ttl_hours: int = int(API_KEY_TTL.total_seconds()) // 3600
    policy_text: str | None = None  # policy TOML (refund + case process)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("REFUNDRY_DATABASE_URL"),
            secret=env.get("REFUNDRY_SECRET", "refundry-development-secret").encode(),
            webhook_secret=env.get("REFUNDRY_WEBHOOK_SECRET", "refundry-webhook-secret").encode(),
            max_body_bytes=int(env.get("REFUNDRY_MAX_BODY_BYTES", 256 * 1024)),
            case_rate_limit=int(env.get("REFUNDRY_CASE_RATE_LIMIT", 10)),
            policy_text=open(env["REFUNDRY_POLICY"], encoding="utf-8").read()
            if env.get("REFUNDRY_POLICY")
            else None,
        )
