"""What the shop tells refundry about a customer after (or with) an order: the account's
creation time at the shop, contacts and notification preferences.

The account creation time is what the risk rules' ``account_age_days`` reads
(services/customers/risk.py); without it the age is unknown and rules on it are not applied
(domain/risk.py). It is sent in the customer block of an ingested order
(services/orders/ingest.py) or by ``update_customer`` (``PATCH /v1/customers/{id}``, the
shop's back end: admin). A time in the future is refused (``customer.invalid``); an update to
a customer refundry never saw is ``customer.not_found``; either changes nothing. Each update
is audited (``customer.updated``, naming the fields sent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from refundry.domain.errors import InvalidInput
from refundry.domain.json_text import instant
from refundry.domain.reader import Reader
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import NotFound
from refundry.services.uow import UnitOfWork
from refundry.store.tables import customer_contacts, customers

__all__ = [
    "CHANNELS",
    "CustomerProfile",
    "account_created_at",
    "parse_contact",
    "read_profile",
    "save_contact",
    "update_customer",
]

CHANNELS = ("in_app", "sms", "email")
# A shop's clock may run a little ahead of ours; further in the future is a wrong value.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CustomerContact:
    phone: str | None
    email: str | None
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """A customer as the shop described it (the staff's view)."""

    id: str
    locale: str
    account_created_at: datetime | None  # None: the shop never sent it
    first_seen_at: datetime  # when refundry first ingested an order of the customer
    contact: CustomerContact | None


def parse_contact(raw: Any, *, field: str, code: str) -> dict[str, Any] | None:
    """A ``contact`` object: phone, email, channels (notification preferences: any of in_app,
    sms, email; default in_app)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"phone", "email", "channels"}:
        raise InvalidInput("contact has phone, email and channels only", code=code, field=field)
    channels = raw.get("channels", ["in_app"])
    if (
        not isinstance(channels, list)
        or any(c not in CHANNELS for c in channels)
        or len(set(channels)) != len(channels)
    ):
        raise InvalidInput(
            f"channels are any of {', '.join(CHANNELS)}, each once",
            code=code,
            field=f"{field}.channels",
        )
    r = Reader(raw, field, code)
    return {
        # The columns' lengths: String(32) and String(200).
        "phone": r.opt_text("phone", max_length=32),
        "email": r.opt_text("email", max_length=200),
        "channels": channels,
    }


def save_contact(conn: Connection, customer_id: str, contact: dict[str, Any]) -> None:
    values = {**contact, "channels": json.dumps(contact["channels"])}
    hit = conn.execute(
        update(customer_contacts)
        .where(customer_contacts.c.customer_id == customer_id)
        .values(**values)
    )
    if hit.rowcount == 0:
        conn.execute(insert(customer_contacts).values(customer_id=customer_id, **values))


def account_created_at(raw: Any, *, now: datetime, field: str, code: str) -> datetime | None:
    """The shop's account creation time: RFC 3339 with an offset, not in the future."""
    if raw is None:
        return None
    at: datetime = Reader({"account_created_at": raw}, field.rpartition(".")[0], code).moment(
        "account_created_at"
    )
    if at > now + CLOCK_SKEW:
        raise InvalidInput("is in the future", code=code, field=field)
    return at


def update_customer(
    engine: Engine, *, actor: Actor, customer_id: str, changes: dict[str, Any], now: datetime
) -> CustomerProfile:
    """Apply the fields the shop sent (``account_created_at``, ``contact``, ``locale``; a field
    left out is left as it is) in one audited transaction."""
    access.require(actor, "customer.update")
    r = Reader(changes, "", "customer.invalid")
    r.only("account_created_at", "contact", "locale")
    opened = account_created_at(
        changes.get("account_created_at"),
        now=now,
        field="account_created_at",
        code="customer.invalid",
    )
    contact = parse_contact(changes.get("contact"), field="contact", code="customer.invalid")
    locale = r.opt_text("locale", max_length=16)
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        known = conn.execute(
            select(customers.c.id).where(customers.c.id == customer_id).with_for_update()
        ).first()
        if known is None:
            raise NotFound(f"no customer {customer_id!r}", code="customer.not_found")
        values: dict[str, Any] = {}
        if opened is not None:
            values["account_created_at"] = opened
        if locale is not None:
            values["locale"] = locale
        if values:
            conn.execute(update(customers).where(customers.c.id == customer_id).values(**values))
        if contact is not None:
            save_contact(conn, customer_id, contact)
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=customer_id)
        trail.record(
            "customer.updated",
            customer_id=customer_id,
            fields=sorted(k for k in changes if changes[k] is not None),
            account_created_at=instant(opened) if opened else None,
        )
        trail.flush(conn)
        uow.commit()
    return read_profile(engine, actor=actor, customer_id=customer_id)


def read_profile(engine: Engine, *, actor: Actor, customer_id: str) -> CustomerProfile:
    access.require(actor, "customer.update")
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(
            select(
                customers.c.id,
                customers.c.locale,
                customers.c.account_created_at,
                customers.c.created_at,
            ).where(customers.c.id == customer_id)
        ).first()
        if row is None:
            raise NotFound(f"no customer {customer_id!r}", code="customer.not_found")
        c = uow.conn.execute(
            select(customer_contacts).where(customer_contacts.c.customer_id == customer_id)
        ).first()
    contact = (
        CustomerContact(c.phone, c.email, tuple(json.loads(c.channels))) if c is not None else None
    )
    return CustomerProfile(
        id=row.id,
        locale=row.locale,
        account_created_at=row.account_created_at,
        first_seen_at=row.created_at,
        contact=contact,
    )
