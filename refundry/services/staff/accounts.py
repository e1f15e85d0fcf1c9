"""Staff accounts and signing in with a password (the desk's ``/desk/signin``).

``add_staff`` stores an account (``refundry user add``): an agent or admin acts under its
own name, a merchant under its merchant id. The password is hashed with argon2id
(argon2-cffi's ``PasswordHasher``, its defaults: RFC 9106's low-memory profile) and never
stored or logged otherwise.

``sign_in_with_passkey`` answers the actor of a staff passkey (services/passkeys.py: a
discoverable credential, registered from the desk, names its owner; a customer's passkey is
refused with ``auth.forbidden``); its refusals are the passkey's own codes.

``sign_in`` answers the ``Actor`` the session is for, or one refusal, ``auth.sign_in_failed``,
whatever went wrong (no such name, a wrong password, a locked account), so a name cannot be
probed. An unknown name costs one hash verification like a known one. After
``MAX_FAILED_ATTEMPTS`` wrong passwords in a row the account is locked for ``LOCK_TIME``
(even the right password is refused then); a success clears the count. A hash made with
older parameters is replaced on the next success.

``agent_names`` lists the agents' accounts by name, for the desk to assign a case to one
(services/cases/handling.py's ``assign`` accepts those names only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update

from refundry.domain.errors import InvalidInput
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict, SignInRefused
from refundry.services.passkeys import RelyingParty, spend_assertion
from refundry.services.uow import UnitOfWork
from refundry.store.tables import staff_accounts

__all__ = [
    "LOCK_TIME",
    "MAX_FAILED_ATTEMPTS",
    "PASSWORD_MIN",
    "STAFF_ROLES",
    "StaffAccount",
    "add_staff",
    "agent_names",
    "sign_in",
    "sign_in_with_passkey",
]

STAFF_ROLES = ("agent", "merchant", "admin")
PASSWORD_MIN = 12  # NIST SP 800-63B asks for 8 at least; the desk acts on money
PASSWORD_MAX = 1024  # hashing a megabyte per try is a denial of service
NAME_MAX = 140
MAX_FAILED_ATTEMPTS = 5
LOCK_TIME = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the name is unknown, so an unknown name costs what a known one does.
_DECOY = _hasher.hash("refundry: no such account")

_REFUSED = "the name or password is not right, or the account is locked for a while"


@dataclass(frozen=True, slots=True)
class StaffAccount:
    name: str
    role: str
    merchant_id: str | None

    @property
    def actor(self) -> Actor:
        """Who the account acts as: a merchant as its merchant, others under their name."""
        if self.role == "merchant" and self.merchant_id:
            return Actor("merchant", self.merchant_id)
        return Actor(self.role, self.name)


def _check(role: str, name: str, password: str, merchant_id: str | None) -> None:
    if role not in STAFF_ROLES:
        raise InvalidInput(
            f"role must be one of {', '.join(STAFF_ROLES)}", code="staff.invalid", field="role"
        )
    if not name.strip() or len(name) > NAME_MAX or not name.isprintable() or name != name.strip():
        raise InvalidInput(
            f"name must be 1 to {NAME_MAX} printable characters without surrounding spaces",
            code="staff.invalid",
            field="name",
        )
    if (role == "merchant") != bool(merchant_id and merchant_id.strip()):
        raise InvalidInput(
            "a merchant account names its merchant id (--merchant), and only a merchant one",
            code="staff.invalid",
            field="merchant",
        )
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters",
            code="staff.invalid",
            field="password",
        )


def add_staff(
    engine: Engine,
    *,
    role: str,
    name: str,
    password: str,
    now: datetime,
    merchant_id: str | None = None,
) -> StaffAccount:
    """Store a new staff account; ``staff.exists`` when the name is taken."""
    _check(role, name, password, merchant_id)
    hashed = _hasher.hash(password)
    with UnitOfWork(engine) as uow:
        taken = uow.conn.execute(
            select(staff_accounts.c.name).where(staff_accounts.c.name == name)
        ).first()
        if taken is not None:
            raise Conflict(f"a staff account {name!r} exists already", code="staff.exists")
        uow.conn.execute(
            insert(staff_accounts).values(
                name=name,
                role=role,
                merchant_id=merchant_id if role == "merchant" else None,
                password_hash=hashed,
                failed_attempts=0,
                locked_until=None,
                created_at=now,
                updated_at=now,
            )
        )
        uow.commit()
    return StaffAccount(name=name, role=role, merchant_id=merchant_id)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def sign_in(engine: Engine, *, name: str, password: str, now: datetime) -> Actor:
    """The actor a desk session is for, or ``auth.sign_in_failed`` (nothing else said)."""
    password = password[:PASSWORD_MAX]
    t = staff_accounts.c
    with UnitOfWork(engine) as uow:
        row = uow.conn.execute(
            select(staff_accounts).where(t.name == name[:NAME_MAX]).with_for_update()
        ).first()
        if row is None:
            _verify(_DECOY, password)
            raise SignInRefused(_REFUSED)
        locked = row.locked_until is not None and row.locked_until > now
        right = _verify(row.password_hash, password)
        if locked or not right:
            if not locked:
                failed = int(row.failed_attempts) + 1
                values: dict[str, object] = {"failed_attempts": failed, "updated_at": now}
                if failed >= MAX_FAILED_ATTEMPTS:
                    values.update(failed_attempts=0, locked_until=now + LOCK_TIME)
                uow.conn.execute(update(staff_accounts).where(t.name == row.name).values(values))
                uow.commit()
            raise SignInRefused(_REFUSED)
        values = {"failed_attempts": 0, "locked_until": None, "updated_at": now}
        if _hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = _hasher.hash(password)
        uow.conn.execute(update(staff_accounts).where(t.name == row.name).values(values))
        uow.commit()
    actor = StaffAccount(name=row.name, role=row.role, merchant_id=row.merchant_id).actor
    access.require(actor, "session.sign_in_password")
    return actor


def sign_in_with_passkey(
    engine: Engine, rp: RelyingParty, *, assertion: str | dict[str, Any], now: datetime
) -> Actor:
    """The actor a desk session is for, from a passkey answer to a ``desk.signin`` challenge
    (``passkeys.assertion_options(purpose="desk.signin")``); the challenge is spent and the
    passkey's counter moved only when the owner may sign in to the desk."""
    with UnitOfWork(engine) as uow:
        trail = AuditTrail(actor="system:desk", at=now, customer_id=None)
        owner = spend_assertion(
            uow.conn, rp, assertion=assertion, purpose="desk.signin", now=now, trail=trail
        )
        role, _, name = owner.partition(":")
        actor = Actor(role, name)
        access.require(actor, "session.sign_in_passkey")
        trail.flush(uow.conn)
        uow.commit()
    return actor


def agent_names(engine: Engine, actor: Actor) -> tuple[str, ...]:
    """The names of the staff accounts of role agent, in order (the desk only)."""
    access.require(actor, "staff.agents")
    with UnitOfWork(engine, readonly=True) as uow:
        names = uow.conn.execute(
            select(staff_accounts.c.name)
            .where(staff_accounts.c.role == "agent")
            .order_by(staff_accounts.c.name)
        ).scalars()
        return tuple(names)
