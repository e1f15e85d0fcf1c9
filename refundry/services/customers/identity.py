"""One-time codes sent to the customer's phone (SPEC §5): request, then verify once.

Only the code's keyed hash is stored (``refundry.domain.otp``); the code itself exists in this
process's memory and in the SMS, and is never logged, audited or written anywhere else.
Wrong codes count per customer (``otp_locks``): ``max_attempts`` of them lock code requests
and verification for ``lock_minutes``; a correct code resets the count. A failed attempt is
committed before it is reported, so an error never rolls back the count. A case submission
spends its code in the transaction that opens the case (``spend_code``): a submission refused
for any other reason leaves the code usable. Sending is limited per customer (a cooldown, a cap
an hour) and per phone number (a cap an hour), against SMS pumping.

Refusals: ``identity.no_phone``, ``identity.code_invalid``, ``identity.code_expired``,
``identity.code_used`` (Unprocessable), ``identity.locked`` (Conflict: it ends by itself),
``identity.resend_too_soon``, ``identity.customer_code_limit``, ``identity.phone_code_limit``
(RateLimited: 429 with Retry-After).
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from refundry.domain.errors import RefundryError
from refundry.domain.json_text import instant
from refundry.domain.otp import RandomSource, code_hash, matches, new_code
from refundry.domain.process_policy import IdentityPolicy
from refundry.notifications import render
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict, RateLimited, Unprocessable
from refundry.services.ports import SmsSender
from refundry.services.uow import UnitOfWork
from refundry.store.tables import customer_contacts, customers, otp_codes, otp_locks

__all__ = [
    "WrongCode",
    "count_wrong_code",
    "request_code",
    "spend_code",
    "verify_code",
]

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

    Refused (429 with Retry-After) within ``resend_cooldown_seconds`` of the customer's last
    code, past ``codes_per_hour`` codes to the customer or ``codes_per_phone_per_hour`` to its
    number in the last hour (SMS pumping: texts to numbers an attacker earns from). The
    customer's counter row is locked first, so concurrent requests are counted one after the
    other. The SMS leaves after the commit: a code that was texted can always be verified."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        lock = _lock_row(conn, customer_id, uow.dialect)
        if lock.locked_until is not None and lock.locked_until > now:
            raise _locked(customer_id, lock.locked_until)
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
        _check_sending_limits(conn, customer_id, str(contact.phone), now, policy)
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
                phone=str(contact.phone),
            )
        )
        trail = AuditTrail(actor=f"customer:{customer_id}", at=now, customer_id=customer_id)
        trail.record(
            "identity.code_requested",
            customer_id=customer_id,
            purpose=purpose,
            code_id=code_id,
            expires_at=instant(expires_at),
        )
        trail.flush(conn)
        uow.commit()
    minutes = max(1, policy.code_ttl_seconds // 60)
    text = render(SMS_TEMPLATE, {"code": code, "minutes": minutes}, str(contact.locale)).text
    try:
        sms.send(phone=str(contact.phone), text=text, key=code_id)
    except RefundryError as exc:  # the provider did not take it: the customer asks again
        _withdraw(engine, customer_id=customer_id, code_id=code_id, now=now, error=exc)
        raise
    log.info("one-time code %s sent to customer %s for %s", code_id, customer_id, purpose)
    return code_id


def _withdraw(
    engine: Engine, *, customer_id: str, code_id: str, now: datetime, error: RefundryError
) -> None:
    """A code the SMS provider did not take is deleted: it was never texted, so it neither
    blocks the customer's next request (cooldown, hourly caps) nor can be verified."""
    with UnitOfWork(engine) as uow:
        uow.conn.execute(delete(otp_codes).where(otp_codes.c.id == code_id))
        trail = AuditTrail(actor=f"customer:{customer_id}", at=now, customer_id=customer_id)
        trail.record(
            "identity.code_not_sent", customer_id=customer_id, code_id=code_id, error=error.code
        )
        trail.flush(uow.conn)
        uow.commit()
    log.warning("one-time code %s not sent to customer %s: %s", code_id, customer_id, error.code)


_HOUR = timedelta(hours=1)


def _seconds_until(when: datetime, now: datetime) -> int:
    return max(1, math.ceil((when - now).total_seconds()))


def _check_sending_limits(
    conn: Connection, customer_id: str, phone: str, now: datetime, policy: IdentityPolicy
) -> None:
    """The cooldown, then the customer's and the number's hourly caps; each its own code."""
    sent = _sent_within_hour(conn, otp_codes.c.customer_id == customer_id, now)
    cooldown = timedelta(seconds=policy.resend_cooldown_seconds)
    if sent and sent[-1] + cooldown > now:
        raise RateLimited(
            f"a code was sent less than {policy.resend_cooldown_seconds} s ago; wait before "
            "asking for another",
            code="identity.resend_too_soon",
            retry_after=_seconds_until(sent[-1] + cooldown, now),
        )
    _check_cap(
        sent,
        policy.codes_per_hour,
        now,
        what="this customer",
        code="identity.customer_code_limit",
    )
    _check_cap(
        _sent_within_hour(conn, otp_codes.c.phone == phone, now),
        policy.codes_per_phone_per_hour,
        now,
        what="this number",
        code="identity.phone_code_limit",
    )


def _sent_within_hour(conn: Connection, whose: ColumnElement[bool], now: datetime) -> list[Any]:
    """When the codes matching ``whose`` were sent in the last hour, oldest first."""
    query = select(otp_codes.c.created_at).where(whose, otp_codes.c.created_at > now - _HOUR)
    return [at for (at,) in conn.execute(query.order_by(otp_codes.c.created_at))]


def _check_cap(sent: list[Any], cap: int, now: datetime, *, what: str, code: str) -> None:
    """At most ``cap`` codes in any hour: the next may go when the oldest counted leaves it."""
    if len(sent) >= cap:
        oldest = sent[len(sent) - cap]
        raise RateLimited(
            f"{cap} codes were sent to {what} in the last hour",
            code=code,
            retry_after=_seconds_until(oldest + _HOUR, now),
        )


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


class WrongCode(Exception):
    """``spend_code`` met a wrong code: the caller's transaction rolls back, then
    ``count_wrong_code`` commits the failure in one of its own and gives the error to raise."""


def spend_code(
    conn: Connection,
    *,
    customer_id: str,
    purpose: str,
    code_id: str,
    code: str,
    now: datetime,
    secret: bytes,
    trail: AuditTrail,
) -> None:
    """Use the code up in the caller's transaction (the one that opens the case): if that
    transaction is refused and rolls back, the code is still usable. Raises the refusal of a
    locked customer, a used or expired code, and ``WrongCode``."""
    lock = _lock_row(conn, customer_id, conn.dialect.name)
    if lock.locked_until is not None and lock.locked_until > now:
        raise _locked(customer_id, lock.locked_until)
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
    if row is None or not matches(
        row.code_hash, secret=secret, customer_id=customer_id, purpose=purpose, candidate=code
    ):
        raise WrongCode(code_id)
    conn.execute(
        update(otp_codes)
        .where(otp_codes.c.id == code_id, otp_codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    _set_failures(conn, customer_id, 0, None)
    trail.record("identity.verified", customer_id=customer_id, purpose=purpose, code_id=code_id)
    log.info("one-time code %s verified for customer %s", code_id, customer_id)


def count_wrong_code(
    engine: Engine, *, customer_id: str, code_id: str, now: datetime, policy: IdentityPolicy
) -> Unprocessable | Conflict:
    """Commit one more wrong code for the customer (locking it out at ``max_attempts``);
    returns the error to raise. A lock that has run out starts a fresh count."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        lock = _lock_row(conn, customer_id, uow.dialect)
        if lock.locked_until is not None and lock.locked_until > now:
            return _locked(customer_id, lock.locked_until)
        failures = 0 if lock.locked_until is not None else int(lock.failures)
        trail = AuditTrail(actor=f"customer:{customer_id}", at=now, customer_id=customer_id)
        error = _wrong_code(conn, customer_id, code_id, failures + 1, now, policy, trail)
        trail.flush(conn)
        uow.commit()
    return error


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
    """Accept the code once, in a transaction of its own, or refuse with its reason. A wrong
    code (or a code id that is not this customer's for this purpose) counts towards the lock; a
    used or expired one does not: it reveals nothing about the code."""
    try:
        with UnitOfWork(engine) as uow:
            trail = AuditTrail(actor=f"customer:{customer_id}", at=now, customer_id=customer_id)
            spend_code(
                uow.conn,
                customer_id=customer_id,
                purpose=purpose,
                code_id=code_id,
                code=code,
                now=now,
                secret=secret,
                trail=trail,
            )
            trail.flush(uow.conn)
            uow.commit()
    except WrongCode:
        raise count_wrong_code(
            engine, customer_id=customer_id, code_id=code_id, now=now, policy=policy
        ) from None


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
        locked_until=instant(until),
    )
    log.warning("customer %s locked out of one-time codes until %s", customer_id, until)
    return _locked(customer_id, until)
