"""Bearer tokens: ``rf1.<payload>.<signature>``, HMAC-SHA256 over the payload with the server's
secret. The payload names the role (customer | merchant | agent | admin), the subject (customer
or merchant id, or the agent's name) and when it expires. `refundry token` issues them for a
shop's back end, which hands customer tokens to its logged-in customers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta

from refundry.domain.errors import RefundryError
from refundry.domain.reader import ID_LENGTH, text_problem
from refundry.services.cases import Actor

__all__ = ["ROLES", "Unauthorized", "issue_token", "read_token"]

ROLES = ("customer", "merchant", "agent", "admin")


class Unauthorized(RefundryError):
    code = "auth.unauthorized"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(
    secret: bytes, *, role: str, subject: str, now: datetime, ttl: timedelta = timedelta(days=30)
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    problem = text_problem(subject, max_length=ID_LENGTH)
    if problem is not None:
        raise ValueError(f"subject {problem}")
    payload = _b64(
        json.dumps(
            {"role": role, "sub": subject, "exp": int((now + ttl).timestamp())},
            separators=(",", ":"),
        ).encode()
    )
    mac = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"rf1.{payload}.{mac}"


def read_token(secret: bytes, token: str, *, now: datetime) -> Actor:
    try:
        version, payload, mac = token.split(".")
    except ValueError:
        raise Unauthorized("malformed bearer token", code="auth.unauthorized") from None
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if version != "rf1" or not hmac.compare_digest(expected, mac):
        raise Unauthorized("bearer token not valid", code="auth.unauthorized")
    claims = json.loads(_unb64(payload))
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
    return Actor(claims["role"], claims["sub"])
