"""The keys that sign the audit log (HMAC-SHA256), held by the process, never by the database.

``refundry.bootstrap`` attaches the keys the settings name (``audit_key``, ``audit_key_id``,
``audit_previous_keys``, ``audit_unkeyed_through``) to the engine it builds; every entry
written through that engine is signed with the current key and records the key's id, and the
verifiers (``verify_chain``, an order's audit) take the keys from the engine they read. An
engine made without the bootstrap (tests, scripts) signs with the public development key,
which outside ``--dev`` the bootstrap never does (``check_production`` refuses to start
without ``audit_key``). docs/audit.md says how an operator keeps and rotates the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

__all__ = ["DEV_AUDIT_KEY", "DEV_KEYS", "AuditKeys", "attach_keys", "keys_of"]

DEV_AUDIT_KEY = b"refundry-development-audit-key"


@dataclass(frozen=True, slots=True)
class AuditKeys:
    """``current``: the id new entries are signed with; ``keys``: id -> key, every key an
    entry may be signed with (the current one included); ``unkeyed_through``: the last entry
    written before entries were signed (migration 0010), verified unkeyed — any unkeyed entry
    after it is a break (a rewrite that dropped the signatures)."""

    current: str
    keys: dict[str, bytes] = field(repr=False)
    unkeyed_through: int = 0

    @property
    def signing_key(self) -> bytes:
        return self.keys[self.current]


DEV_KEYS = AuditKeys("dev", {"dev": DEV_AUDIT_KEY})


def attach_keys(engine: Engine, keys: AuditKeys) -> None:
    setattr(engine, "_refundry_audit_keys", keys)  # noqa: B010 (not an Engine attribute)


def keys_of(engine: Engine) -> AuditKeys:
    keys: AuditKeys = getattr(engine, "_refundry_audit_keys", DEV_KEYS)
    return keys
