"""The shop's webhook endpoints: registered, listed, disabled / enabled, re-keyed, deleted by an
admin (the shop's back end; services/access.py), each change audited in its transaction.

The secret (``whsec_`` + 32 random bytes in base64, the Standard Webhooks form) is answered
once, when the endpoint is registered or its secret rotated; lists and reads never show it.
After a rotation the old secret keeps signing beside the new one (two signatures in
``webhook-signature``) for ``overlap``, so the shop can switch without dropping a delivery.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, insert, select, update

from refundry.domain.errors import InvalidInput
from refundry.services.access import Actor, require
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import NotFound
from refundry.services.shop_webhooks.catalogue import EVENT_TYPES
from refundry.services.shop_webhooks.fanout import resume_deliveries
from refundry.services.uow import UnitOfWork
from refundry.store.tables import webhook_endpoints

__all__ = [
    "Endpoint",
    "Keyed",
    "delete_endpoint",
    "endpoint_of",
    "list_endpoints",
    "read_endpoint",
    "register_endpoint",
    "rotate_secret",
    "set_enabled",
]

ALL = "*"  # every event type, those added later included
_e = webhook_endpoints.c


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    status: str  # enabled | disabled
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Keyed:
    """An endpoint with its secret: the one answer that shows it."""

    endpoint: Endpoint
    secret: str


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_url(url: str, *, dev: bool) -> str:
    """An absolute https URL to a public host; dev mode also takes http and this machine or
    the local network (a receiver under test). Outside dev mode a literal loopback, private,
    link-local or otherwise reserved address, and ``localhost``, are refused, so an admin
    token cannot aim refundry's worker at its own network."""
    parts = urlsplit(url)
    schemes = ("https", "http") if dev else ("https",)
    if len(url) > 2000 or parts.scheme not in schemes or not parts.hostname:
        shown = " or ".join(f"{s}://" for s in schemes)
        raise _bad_url(f"must be an absolute {shown} URL of at most 2000 characters")
    if parts.username or parts.password:
        raise _bad_url("must not carry credentials (the signature authenticates refundry)")
    if not dev and _internal(parts.hostname):
        raise _bad_url(f"{parts.hostname!r} is not a public address")
    return url


def _bad_url(message: str) -> InvalidInput:
    return InvalidInput(message, code="webhook.url_invalid", field="url")


def _internal(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolved when sending
    return not address.is_global


def _check_types(event_types: Sequence[str]) -> tuple[str, ...]:
    if not event_types:
        raise InvalidInput(
            'name at least one event type, or "*" for all',
            code="webhook.event_type_unknown",
            field="event_types",
        )
    for i, name in enumerate(event_types):
        if name != ALL and name not in EVENT_TYPES:
            raise InvalidInput(
                f"{name!r} is not an event type (docs/webhooks.md lists them)",
                code="webhook.event_type_unknown",
                field=f"event_types[{i}]",
            )
    return tuple(dict.fromkeys(event_types))


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        event_types=tuple(json.loads(row.event_types)),
        description=row.description,
        status=row.status,
        disabled_reason=row.disabled_reason,
        consecutive_failures=int(row.consecutive_failures),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def endpoint_of(conn: Connection, endpoint_id: str, *, lock: bool = False) -> Any:
    """The endpoint's row, or ``webhook.endpoint_not_found`` (deleted ones too)."""
    query = select(webhook_endpoints).where(_e.id == endpoint_id, _e.status != "deleted")
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}", code="webhook.endpoint_not_found")
    return row


def register_endpoint(
    engine: Engine,
    *,
    actor: Actor,
    url: str,
    event_types: Sequence[str],
    description: str = "",
    now: datetime,
    dev: bool = False,
) -> Keyed:
    """A new enabled endpoint and its secret. ``dev``: dev mode (``_check_url``)."""
    require(actor, "webhook.manage")
    url = _check_url(url, dev=dev)
    types = _check_types(event_types)
    endpoint_id = "we_" + secrets.token_hex(12)
    secret = _new_secret()
    with UnitOfWork(engine) as uow:
        uow.conn.execute(
            insert(webhook_endpoints).values(
                id=endpoint_id,
                url=url,
                event_types=json.dumps(list(types)),
                description=description,
                secret=secret,
                status="enabled",
                consecutive_failures=0,
                created_at=now,
                updated_at=now,
            )
        )
        _audit(uow.conn, actor, now, "webhook.endpoint_registered", endpoint_id, url=url)
        row = endpoint_of(uow.conn, endpoint_id)
        uow.commit()
    return Keyed(_endpoint(row), secret)


def list_endpoints(engine: Engine, *, actor: Actor) -> list[Endpoint]:
    require(actor, "webhook.manage")
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(webhook_endpoints).where(_e.status != "deleted").order_by(_e.created_at, _e.id)
        ).all()
    return [_endpoint(r) for r in rows]


def read_endpoint(engine: Engine, *, actor: Actor, endpoint_id: str) -> Endpoint:
    require(actor, "webhook.manage")
    with UnitOfWork(engine, readonly=True) as uow:
        return _endpoint(endpoint_of(uow.conn, endpoint_id))


def set_enabled(
    engine: Engine, *, actor: Actor, endpoint_id: str, enabled: bool, now: datetime
) -> Endpoint:
    """Disable (nothing is sent; deliveries wait) or enable (the failure count starts again
    and waiting deliveries are due now). The same state again changes nothing."""
    require(actor, "webhook.manage")
    with UnitOfWork(engine) as uow:
        row = endpoint_of(uow.conn, endpoint_id, lock=True)
        wanted = "enabled" if enabled else "disabled"
        if row.status != wanted:
            uow.conn.execute(
                update(webhook_endpoints)
                .where(_e.id == endpoint_id)
                .values(
                    status=wanted,
                    disabled_reason=None if enabled else f"disabled by {actor.tag}",
                    consecutive_failures=0,
                    updated_at=now,
                )
            )
            if enabled:
                resume_deliveries(uow.conn, endpoint_id=endpoint_id, now=now)
            _audit(uow.conn, actor, now, f"webhook.endpoint_{wanted}", endpoint_id)
            row = endpoint_of(uow.conn, endpoint_id)
        uow.commit()
    return _endpoint(row)


def rotate_secret(
    engine: Engine, *, actor: Actor, endpoint_id: str, now: datetime, overlap: timedelta
) -> Keyed:
    """A new secret; the old one also signs for ``overlap`` (the setting
    ``webhook_secret_overlap_hours``)."""
    require(actor, "webhook.manage")
    secret = _new_secret()
    with UnitOfWork(engine) as uow:
        row = endpoint_of(uow.conn, endpoint_id, lock=True)
        uow.conn.execute(
            update(webhook_endpoints)
            .where(_e.id == endpoint_id)
            .values(
                secret=secret,
                previous_secret=row.secret,
                previous_secret_until=now + overlap,
                updated_at=now,
            )
        )
        _audit(uow.conn, actor, now, "webhook.secret_rotated", endpoint_id)
        row = endpoint_of(uow.conn, endpoint_id)
        uow.commit()
    return Keyed(_endpoint(row), secret)


def delete_endpoint(engine: Engine, *, actor: Actor, endpoint_id: str, now: datetime) -> None:
    """Gone for every answer and never sent to again; its delivery log stays in the store
    (the audit names it), its secrets do not."""
    require(actor, "webhook.manage")
    with UnitOfWork(engine) as uow:
        endpoint_of(uow.conn, endpoint_id, lock=True)
        uow.conn.execute(
            update(webhook_endpoints)
            .where(_e.id == endpoint_id)
            .values(status="deleted", secret="", previous_secret=None, updated_at=now)
        )
        _audit(uow.conn, actor, now, "webhook.endpoint_deleted", endpoint_id)
        uow.commit()


def _audit(
    conn: Connection, actor: Actor, now: datetime, action: str, endpoint_id: str, **data: Any
) -> None:
    trail = AuditTrail(actor=actor.tag, at=now, customer_id=None)
    trail.record(action, endpoint_id=endpoint_id, **data)
    trail.flush(conn)
