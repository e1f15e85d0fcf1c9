"""Bearer tokens: ``rf1.<payload>.<signature>``, HMAC-SHA256 over the payload with one of the
server's secrets. The payload names the role (customer | merchant | agent | admin), the subject
(customer or merchant id, or the agent's name), when it expires, the key id (``kid``) of the
secret that signed it — so a secret can be rotated: the new one signs, the old ones named in
``previous_secrets`` still verify until their tokens expire — and a token id (``jti``) an admin
can revoke. `refundry token` issues them for a shop's back end, which hands customer tokens to
its logged-in customers. A token without ``kid`` (issued before key ids) is checked against the
current secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from refundry.domain.errors import RefundryError
from refundry.domain.reader import ID_LENGTH, text_problem
from refundry.services.cases.process import Actor

__all__ = ["ROLES", "Unauthorized", "actor_of", "issue_token", "read_token", "token_claims"]

ROLES = ("customer", "merchant", "agent", "admin")


class Unauthorized(RefundryError):
    code = "auth.unauthorized"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(
    secret: bytes,
    *,
    role: str,
    subject: str,
    now: datetime,
    ttl: timedelta = timedelta(days=30),
    key_id: str = "k1",
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    problem = text_problem(subject, max_length=ID_LENGTH)
    if problem is not None:
        raise ValueError(f"subject {problem}")
    claims = {
        "role": role,
        "sub": subject,
        "exp": int((now + ttl).timestamp()),
        "kid": key_id,
        "jti": secrets.token_hex(12),
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"rf1.{payload}.{mac}"


def token_claims(keys: bytes | dict[str, bytes], token: str, *, current: str = "k1") -> Any:
    """The verified claims of ``token``; ``keys``: key id -> secret (or the one secret)."""
    if isinstance(keys, bytes):
        keys = {current: keys}
    try:
        version, payload, mac = token.split(".")
        claims = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized("malformed bearer token", code="auth.unauthorized") from None
    kid = claims.get("kid", current) if isinstance(claims, dict) else None
    secret = keys.get(kid) if isinstance(kid, str) else None
    if secret is None or version != "rf1":
        raise Unauthorized("bearer token not valid", code="auth.unauthorized")
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        raise Unauthorized("bearer token not valid", code="auth.unauthorized")
    return claims


def read_token(
    keys: bytes | dict[str, bytes],
    token: str,
    *,
    now: datetime,
    current: str = "k1",
    revoked: Callable[[str], bool] | None = None,
) -> Actor:
    """The token's actor; refused when not valid, expired, or (``revoked``) revoked."""
    return actor_of(token_claims(keys, token, current=current), now=now, revoked=revoked)


def actor_of(claims: Any, *, now: datetime, revoked: Callable[[str], bool] | None = None) -> Actor:
    """The actor of a token's verified ``claims`` (``token_claims``); refused when they name
    no actor, when expired, or (``revoked``) revoked."""
    sub = claims.get("sub")
    # The subject is an id the queries use: what no id may hold (NUL: PostgreSQL refuses it)
    # is refused here, whoever signed it.
    if (
        claims.get("role") not in ROLES
        or not isinstance(sub, str)
        or not sub
        or text_problem(sub, max_length=ID_LENGTH) is not None
    ):
        raise Unauthorized("bearer token not valid", code="auth.unauthorized")
    if int(claims.get("exp", 0)) <= now.timestamp():
        raise Unauthorized("bearer token expired", code="auth.token_expired")
    jti = claims.get("jti")
    if revoked is not None and isinstance(jti, str) and revoked(jti):
        raise Unauthorized("bearer token revoked", code="auth.token_revoked")
    return Actor(claims["role"], claims["sub"])
