"""Passkeys (WebAuthn): registering them, and checking an assertion once.

The ceremonies are Duo's ``webauthn`` library's (py_webauthn: options, attestation and
assertion verification); refundry keeps the credentials and the challenges (store/tables.py
``passkeys``, ``passkey_challenges``) and decides what an assertion may do:

- a signed-in customer or staff member registers passkeys (``registration_options`` then
  ``register_passkey``) and removes them (``remove_passkey``); user verification (the
  fingerprint, the face, the device PIN) is required, and a staff passkey is discoverable
  (the desk's sign-in asks no name);
- a case submission that needs an identity check may give an assertion instead of the SMS
  code: ``assertion_options`` issues a challenge bound to that submission (the hash of its
  request document, ``submission_binding``) and ``spend_assertion`` checks it in the
  transaction that opens the case, so a refused submission leaves the challenge usable;
- the desk's sign-in issues a challenge for no one and takes the owner from the passkey.

A challenge lives ``CHALLENGE_TTL``, serves one purpose and is used once. An assertion is
checked in this order, each refusal its own code (422) and none of them changing anything:
the challenge (``identity.passkey_challenge_unknown``, ``…_expired``, ``…_used``, issued for
another submission: ``…_mismatch``), the origin and relying party (``identity.passkey_origin``),
the credential (unknown, another's or removed: ``identity.passkey_unknown``), then the
library's verification: signature and user verification (``identity.passkey_invalid``), the
sign counter (not above the stored one: a cloned authenticator, ``identity.passkey_counter``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import webauthn
from sqlalchemy import Connection, Engine, insert, select, update
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from refundry.domain.json_io import parse_request
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict, NotFound, Unprocessable
from refundry.services.uow import UnitOfWork
from refundry.store.tables import passkey_challenges, passkeys

__all__ = [
    "CHALLENGE_TTL",
    "PasskeyView",
    "RelyingParty",
    "assertion_options",
    "list_passkeys",
    "register_passkey",
    "registration_options",
    "remove_passkey",
    "spend_assertion",
    "submission_binding",
]

log = logging.getLogger(__name__)

CHALLENGE_TTL = timedelta(minutes=2)
TIMEOUT_MS = 60_000  # what the browser is told; the challenge outlives it a little
NAME_MAX = 100


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the passkeys are for: the RP id (the shop's domain, ``webauthn_rp_id``), the name
    shown by the browser and the origins its pages are served from (``webauthn_origins``)."""

    id: str
    name: str
    origins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PasskeyView:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


def submission_binding(request: dict[str, Any]) -> str:
    """The hash a case submission's challenge is bound to: its order, units (per line, in line
    order), reason, kind and return method. The description may change; what is refunded not."""
    req = parse_request(request)
    doc = {
        "order_id": req.order_id,
        "lines": sorted((u.line_id, u.quantity) for u in req.lines),
        "reason": req.reason,
        "kind": req.kind,
        "return_method": req.return_method,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _user_handle(owner: str) -> bytes:
    """The WebAuthn user id: not the customer's id itself (the spec asks for no personal data)."""
    return hashlib.sha256(b"refundry-passkey-user|" + owner.encode()).digest()


def _issue(
    conn: Connection, *, purpose: str, owner: str | None, bound_to: str | None, now: datetime
) -> bytes:
    challenge = secrets.token_bytes(32)
    conn.execute(
        insert(passkey_challenges).values(
            challenge=bytes_to_base64url(challenge),
            purpose=purpose,
            owner=owner,
            bound_to=bound_to,
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    return challenge


def _active(conn: Connection, owner: str) -> list[Any]:
    return list(
        conn.execute(
            select(passkeys)
            .where(passkeys.c.owner == owner, passkeys.c.removed_at.is_(None))
            .order_by(passkeys.c.created_at, passkeys.c.id)
        )
    )


def _descriptor(row: Any) -> PublicKeyCredentialDescriptor:
    known = {t.value for t in AuthenticatorTransport}
    transports = [AuthenticatorTransport(t) for t in json.loads(row.transports) if t in known]
    return PublicKeyCredentialDescriptor(
        id=webauthn.base64url_to_bytes(row.id), transports=transports or None
    )


def list_passkeys(engine: Engine, actor: Actor) -> list[PasskeyView]:
    """The actor's own passkeys, oldest first (removed ones left out)."""
    with UnitOfWork(engine, readonly=True) as uow:
        rows = _active(uow.conn, actor.tag)
    return [PasskeyView(r.id, r.name, r.created_at, r.last_used_at) for r in rows]


def registration_options(engine: Engine, rp: RelyingParty, *, actor: Actor, now: datetime) -> str:
    """The options for ``navigator.credentials.create`` (JSON), with a fresh challenge; the
    actor's passkeys are excluded (an authenticator holds one passkey per person)."""
    with UnitOfWork(engine) as uow:
        existing = _active(uow.conn, actor.tag)
        challenge = _issue(uow.conn, purpose="register", owner=actor.tag, bound_to=None, now=now)
        uow.commit()
    resident = ResidentKeyRequirement.PREFERRED
    if actor.role != "customer":  # the desk's sign-in names nobody: the passkey must
        resident = ResidentKeyRequirement.REQUIRED
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=_user_handle(actor.tag),
        user_name=actor.id,
        user_display_name=actor.id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=resident, user_verification=UserVerificationRequirement.REQUIRED
        ),
        exclude_credentials=[_descriptor(r) for r in existing],
    )
    return webauthn.options_to_json(options)


def _read(parse: Callable[[Any], Any], credential: str | dict[str, Any]) -> tuple[Any, Any]:
    """The browser's answer parsed by the library, and its client data (challenge, origin)."""
    try:
        parsed = parse(credential)
        return parsed, parse_client_data_json(parsed.response.client_data_json)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise Unprocessable(
            "the passkey's answer is not readable", code="identity.passkey_invalid"
        ) from exc


def _take_challenge(
    conn: Connection,
    client_data: Any,
    *,
    purpose: str,
    owner: str | None,
    bound_to: str | None,
    now: datetime,
) -> Any:
    """The challenge row the answer signed, locked, if it is usable for this purpose, owner
    and submission; else the refusal that says which it is not."""
    row = conn.execute(
        select(passkey_challenges)
        .where(passkey_challenges.c.challenge == bytes_to_base64url(client_data.challenge))
        .with_for_update()
    ).first()
    if row is None or row.purpose != purpose or (owner is not None and row.owner != owner):
        raise Unprocessable(
            "this passkey answer was not asked for here; start again",
            code="identity.passkey_challenge_unknown",
        )
    if row.used_at is not None:
        raise Unprocessable(
            "this passkey answer was used already; start again",
            code="identity.passkey_challenge_used",
        )
    if row.expires_at <= now:
        raise Unprocessable(
            "the passkey check took too long; start again",
            code="identity.passkey_challenge_expired",
        )
    if row.bound_to != bound_to:
        raise Unprocessable(
            "this passkey answer was given for another request; confirm this one",
            code="identity.passkey_challenge_mismatch",
        )
    return row


def _check_origin(rp: RelyingParty, client_data: Any, expected_type: str) -> None:
    if client_data.type != expected_type:
        raise Unprocessable(
            "the passkey's answer is of the wrong kind", code="identity.passkey_invalid"
        )
    if client_data.origin not in rp.origins:
        raise Unprocessable(
            f"the passkey was used on {client_data.origin!r}, not on this shop's site",
            code="identity.passkey_origin",
        )


def _spend(conn: Connection, challenge: str, now: datetime) -> None:
    conn.execute(
        update(passkey_challenges)
        .where(passkey_challenges.c.challenge == challenge, passkey_challenges.c.used_at.is_(None))
        .values(used_at=now)
    )


def register_passkey(
    engine: Engine,
    rp: RelyingParty,
    *,
    actor: Actor,
    credential: str | dict[str, Any],
    name: str,
    now: datetime,
) -> PasskeyView:
    """Keep the passkey ``navigator.credentials.create`` made for a challenge of
    ``registration_options`` (verified by the library: origin, RP id, user verification)."""
    name = " ".join(name.split())[:NAME_MAX] or "Passkey"
    parsed, client_data = _read(parse_registration_credential_json, credential)
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        _check_origin(rp, client_data, "webauthn.create")
        row = _take_challenge(
            conn, client_data, purpose="register", owner=actor.tag, bound_to=None, now=now
        )
        try:
            verified = webauthn.verify_registration_response(
                credential=parsed,
                expected_challenge=client_data.challenge,
                expected_rp_id=rp.id,
                expected_origin=list(rp.origins),
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            raise Unprocessable(
                f"the new passkey was refused: {exc}", code="identity.passkey_invalid"
            ) from exc
        credential_id = bytes_to_base64url(verified.credential_id)
        if conn.execute(select(passkeys.c.id).where(passkeys.c.id == credential_id)).first():
            raise Conflict("this passkey is registered already", code="identity.passkey_exists")
        transports = [t.value for t in parsed.response.transports or []]
        conn.execute(
            insert(passkeys).values(
                id=credential_id,
                owner=actor.tag,
                name=name,
                public_key=bytes_to_base64url(verified.credential_public_key),
                sign_count=verified.sign_count,
                transports=json.dumps(transports),
                created_at=now,
            )
        )
        _spend(conn, row.challenge, now)
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=actor.customer_id)
        trail.record("identity.passkey_added", owner=actor.tag, passkey_id=credential_id)
        trail.flush(conn)
        uow.commit()
    log.info("passkey %s added for %s", credential_id[:16], actor.tag)
    return PasskeyView(credential_id, name, now, None)


def remove_passkey(engine: Engine, *, actor: Actor, passkey_id: str, now: datetime) -> None:
    """Remove one of the actor's passkeys: from now on its answers are refused
    (``identity.passkey_unknown``). Another's, or a removed one: ``identity.passkey_not_found``."""
    with UnitOfWork(engine) as uow:
        done = uow.conn.execute(
            update(passkeys)
            .where(
                passkeys.c.id == passkey_id,
                passkeys.c.owner == actor.tag,
                passkeys.c.removed_at.is_(None),
            )
            .values(removed_at=now)
        )
        if done.rowcount != 1:
            raise NotFound("no such passkey", code="identity.passkey_not_found")
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=actor.customer_id)
        trail.record("identity.passkey_removed", owner=actor.tag, passkey_id=passkey_id)
        trail.flush(uow.conn)
        uow.commit()


def assertion_options(
    engine: Engine,
    rp: RelyingParty,
    *,
    purpose: str,
    now: datetime,
    actor: Actor | None = None,
    bound_to: str | None = None,
) -> str:
    """The options for ``navigator.credentials.get`` (JSON), with a fresh challenge for
    ``purpose``: a case submission names the actor (its passkeys are allowed, none:
    ``identity.no_passkey``) and the submission (``submission_binding``); the desk's sign-in
    names neither (the browser offers the site's discoverable passkeys)."""
    with UnitOfWork(engine) as uow:
        allowed = []
        if actor is not None:
            allowed = [_descriptor(r) for r in _active(uow.conn, actor.tag)]
            if not allowed:
                raise Unprocessable(
                    "there is no passkey on this account", code="identity.no_passkey"
                )
        owner = actor.tag if actor is not None else None
        challenge = _issue(uow.conn, purpose=purpose, owner=owner, bound_to=bound_to, now=now)
        uow.commit()
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return webauthn.options_to_json(options)


def spend_assertion(
    conn: Connection,
    rp: RelyingParty,
    *,
    assertion: str | dict[str, Any],
    purpose: str,
    now: datetime,
    trail: AuditTrail,
    owner: str | None = None,
    bound_to: str | None = None,
) -> str:
    """Check ``assertion`` (``navigator.credentials.get``'s answer) in the caller's
    transaction and spend its challenge there; returns the passkey's owner (an actor tag).
    ``owner``: the passkey must be this actor's (a case submission); None: anyone's (the
    desk's sign-in, which checks the owner's role). See the module for the refusals."""
    parsed, client_data = _read(parse_authentication_credential_json, assertion)
    challenge = _take_challenge(
        conn, client_data, purpose=purpose, owner=owner, bound_to=bound_to, now=now
    )
    _check_origin(rp, client_data, "webauthn.get")
    key = conn.execute(select(passkeys).where(passkeys.c.id == parsed.id).with_for_update()).first()
    if key is None or key.removed_at is not None or (owner is not None and key.owner != owner):
        raise Unprocessable(
            "this passkey is not (or no longer) registered here", code="identity.passkey_unknown"
        )
    try:
        verified = webauthn.verify_authentication_response(
            credential=parsed,
            expected_challenge=client_data.challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            credential_public_key=webauthn.base64url_to_bytes(key.public_key),
            credential_current_sign_count=int(key.sign_count),
            require_user_verification=True,
        )
    except WebAuthnException as exc:
        if "sign count" in str(exc):
            raise Unprocessable(
                "this passkey's counter went back: it may have been copied",
                code="identity.passkey_counter",
            ) from exc
        raise Unprocessable(
            f"the passkey's answer was refused: {exc}", code="identity.passkey_invalid"
        ) from exc
    conn.execute(
        update(passkeys)
        .where(passkeys.c.id == key.id)
        .values(sign_count=verified.new_sign_count, last_used_at=now)
    )
    _spend(conn, challenge.challenge, now)
    with trail.acting(str(key.owner)):  # the desk's sign-in knows who only now
        trail.record(
            "identity.passkey_verified", owner=key.owner, purpose=purpose, passkey_id=key.id
        )
    return str(key.owner)
