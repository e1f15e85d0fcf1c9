"""One-time codes sent to the customer's phone (SPEC §5): request, then verify once.

Only the code's keyed hash is stored (``refundry.domain.otp``); the code itself exists in this
process's memory and in the SMS, and is never logged, audited or written anywhere else.
Wrong codes count per customer (``otp_locks``): ``max_attempts`` of them lock code requests
and verification for ``lock_minutes``; a correct code resets the count. A failed attempt is
committed before it is reported, so an error never rolls back the count.

Refusals: ``identity.no_phone``, ``identity.code_invalid``, ``identity.code_expired``,
``identity.code_used`` (Unprocessable) and ``identity.locked`` (Conflict: it ends by itself).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from refundry.domain.otp import RandomSource, code_hash, matches, new_code
from refundry.domain.process_policy import IdentityPolicy
from refundry.notifications import render
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict, Unprocessable
from refundry.services.ports import SmsSender
from refundry.services.uow import UnitOfWork
from refundry.store.tables import customer_contacts, customers, otp_codes, otp_locks

__all__ = ["request_code", "verify_code"]

log = logging.getLogger(__name__)

SMS_TEMPLATE = "identity.code"  # refundry.notifications.templates


def _locked_until(conn: Connection, customer_id: str, now: datetime) -> datetime | None:
    until = conn.execute(
        select(otp_locks.c.locked_until).where(otp_locks.c.customer_id == customer_id)
    ).scalar_one_or_none()
    return until if until is not None and until > now else None


def _locked(customer_id: str, until: datetime) -> Conflict:
    return Conflict(
        f"too many wrong codes for customer {customer_id}; try again after {until.isoformat()}",
        code="identity.locked",
    )


def request_code(
    engine: Engine,
    *,
    customer_id: str,
    purpose: str,
    now: datetime,
    policy: IdentityPolicy,
    sms: SmsSender,
    secret: bytes,
    rng: RandomSource,
) -> str:
    """Make a code, keep its hash, text it to the customer's phone; returns the code's id.

    The SMS leaves after the commit: a code that was texted can always be verified."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        until = _locked_until(conn, customer_id, now)
        if until is not None:
            raise _locked(customer_id, until)
        contact = conn.execute(
            select(customer_contacts.c.phone, customers.c.locale)
            .select_from(customers)
            .outerjoin(customer_contacts, customer_contacts.c.customer_id == customers.c.id)
            .where(customers.c.id == customer_id)
        ).first()
        if contact is None or not contact.phone:
            raise Unprocessable(
                f"customer {customer_id} has no phone number to send a code to",
                code="identity.no_phone",
            )
        code_id = f"otp-{uuid.uuid4().hex}"
        code = new_code(rng, length=policy.code_length)
        expires_at = now + timedelta(seconds=policy.code_ttl_seconds)
        conn.execute(
            otp_codes.insert().values(
                id=code_id,
                customer_id=customer_id,
                purpose=purpose,
                code_hash=code_hash(secret, customer_id=customer_id, purpose=purpose, code=code),
                expires_at=expires_at,
                created_at=now,
            )
        )
        trail = AuditTrail(actor=f"customer:{customer_id}", at=now)
        trail.record(
            "identity.code_requested",
            customer_id=customer_id,
            purpose=purpose,
            code_id=code_id,
            expires_at=expires_at.isoformat(),
        )
        trail.flush(conn)
        uow.commit()
    minutes = max(1, policy.code_ttl_seconds // 60)
    text = render(SMS_TEMPLATE, {"code": code, "minutes": minutes}, str(contact.locale)).text
    sms.send(phone=str(contact.phone), text=text, key=code_id)
    log.info("one-time code %s sent to customer %s for %s", code_id, customer_id, purpose)
    return code_id


def _lock_row(conn: Connection, customer_id: str, dialect: str) -> Any:
    """The customer's failure counter, created if missing and locked for this transaction."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    conn.execute(
        insert(otp_locks)
        .values(customer_id=customer_id, failures=0)
        .on_conflict_do_nothing(index_elements=["customer_id"])
    )
    return conn.execute(
        select(otp_locks.c.failures, otp_locks.c.locked_until)
        .where(otp_locks.c.customer_id == customer_id)
        .with_for_update()
    ).one()


def _set_failures(
    conn: Connection, customer_id: str, failures: int, locked_until: datetime | None
) -> None:
    conn.execute(
        update(otp_locks)
        .where(otp_locks.c.customer_id == customer_id)
        .values(failures=failures, locked_until=locked_until)
    )


def verify_code(
    engine: Engine,
    *,
    customer_id: str,
    purpose: str,
    code_id: str,
    code: str,
    now: datetime,
    policy: IdentityPolicy,
    secret: bytes,
) -> None:
    """Accept the code once, or refuse with its reason. A wrong code (or a code id that is not
    this customer's for this purpose) counts towards the lock; a used or expired one does not:
    it reveals nothing about the code."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        lock = _lock_row(conn, customer_id, uow.dialect)
        if lock.locked_until is not None and lock.locked_until > now:
            raise _locked(customer_id, lock.locked_until)
        # A lock that has run out starts a fresh count.
        failures = 0 if lock.locked_until is not None else int(lock.failures)
        row = conn.execute(
            select(otp_codes)
            .where(
                otp_codes.c.id == code_id,
                otp_codes.c.customer_id == customer_id,
                otp_codes.c.purpose == purpose,
            )
            .with_for_update()
        ).first()
        if row is not None and row.used_at is not None:
            raise Unprocessable(f"code {code_id} was already used", code="identity.code_used")
        if row is not None and row.expires_at <= now:
            raise Unprocessable(f"code {code_id} has expired", code="identity.code_expired")
        trail = AuditTrail(actor=f"customer:{customer_id}", at=now)
        if row is None or not matches(
            row.code_hash, secret=secret, customer_id=customer_id, purpose=purpose, candidate=code
        ):
            error = _wrong_code(conn, customer_id, code_id, failures + 1, now, policy, trail)
            trail.flush(conn)
            uow.commit()
            raise error
        conn.execute(
            update(otp_codes)
            .where(otp_codes.c.id == code_id, otp_codes.c.used_at.is_(None))
            .values(used_at=now)
        )
        _set_failures(conn, customer_id, 0, None)
        trail.record("identity.verified", customer_id=customer_id, purpose=purpose, code_id=code_id)
        trail.flush(conn)
        uow.commit()
    log.info("one-time code %s verified for customer %s", code_id, customer_id)


def _wrong_code(
    conn: Connection,
    customer_id: str,
    code_id: str,
    failures: int,
    now: datetime,
    policy: IdentityPolicy,
    trail: AuditTrail,
) -> Unprocessable | Conflict:
    if failures < policy.max_attempts:
        _set_failures(conn, customer_id, failures, None)
        left = policy.max_attempts - failures
        return Unprocessable(
            f"wrong code ({left} attempt{'s' if left != 1 else ''} left)",
            code="identity.code_invalid",
        )
    until = now + timedelta(minutes=policy.lock_minutes)
    _set_failures(conn, customer_id, failures, until)
    # The codes still out could otherwise be guessed at again once the lock ends.
    conn.execute(
        update(otp_codes)
        .where(
            otp_codes.c.customer_id == customer_id,
            otp_codes.c.used_at.is_(None),
            otp_codes.c.expires_at > now,
        )
        .values(expires_at=now)
    )
    trail.record(
        "identity.locked",
        customer_id=customer_id,
        code_id=code_id,
        failures=failures,
        locked_until=until.isoformat(),
    )
    log.warning("customer %s locked out of one-time codes until %s", customer_id, until)
    return _locked(customer_id, until)
