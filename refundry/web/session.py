"""Who is signed in, and the forms' CSRF token.

**Session.** The shop signs its customer in with a short-lived customer token (a sign-in
link, ``/signin?token=…``, docs/pages.md): refundry checks it like a bearer token
(refundry/api/auth.py: signature, key id, expiry, revocation), refuses one that lives longer
than ``LINK_MAX_LIFETIME`` (a link is not a long-lived credential) and gives the browser a
session of its own: a new token for the same customer, ``SESSION_LIFETIME`` long, in the
``rf_session`` cookie (HttpOnly, SameSite=Lax, Secure when the request came over TLS). Every
page reads it back the same way, so a revoked or expired session is no session.

**CSRF.** Signed double submit (OWASP's CSRF cheat sheet): the ``rf_csrf`` cookie holds a
random nonce; each form carries ``csrf_token`` = HMAC(secret, nonce | hash of the session
cookie). A POST whose token does not match its own cookies is refused before the route runs
(``csrf_guard``), so a form posted from another site, or without the token, changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from refundry.api.auth import issue_token, read_token, token_claims
from refundry.api.deps import ApiContext, context
from refundry.services import access
from refundry.services.access import Actor, Area
from refundry.services.errors import Forbidden

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "LINK_MAX_LIFETIME",
    "SESSION_COOKIE",
    "SESSION_LIFETIME",
    "CheckedForm",
    "CsrfRefused",
    "cookie_actor",
    "csrf_guard",
    "csrf_token",
    "end_session",
    "session_actor",
    "session_reaching",
    "start_session",
]

SESSION_COOKIE = "rf_session"
CSRF_COOKIE = "rf_csrf"
CSRF_FIELD = "csrf_token"
SESSION_LIFETIME = timedelta(hours=12)
LINK_MAX_LIFETIME = timedelta(minutes=15)


class CsrfRefused(Forbidden):
    """A form post without the token of its own cookies."""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _now(ctx: ApiContext) -> datetime:
    return ctx.now()


def read_link(ctx: ApiContext, token: str) -> Actor:
    """The actor a sign-in link's token names: valid, not revoked, and short-lived."""
    settings, now = ctx.settings, _now(ctx)
    actor = read_token(
        settings.token_secrets(),
        token,
        now=now,
        current=settings.token_key_id,
        revoked=lambda jti: ctx.revocations.is_revoked(jti, now=now),
    )
    claims = token_claims(settings.token_secrets(), token, current=settings.token_key_id)
    if int(claims["exp"]) - now.timestamp() > LINK_MAX_LIFETIME.total_seconds():
        raise Forbidden(
            "a sign-in link must expire within 15 minutes; ask the shop for a new one",
            code="auth.forbidden",
        )
    return actor


def start_session(ctx: ApiContext, request: Request, response: Response, actor: Actor) -> None:
    settings = ctx.settings
    token = issue_token(
        settings.signing_secret(),
        role=actor.role,
        subject=actor.id,
        now=_now(ctx),
        ttl=SESSION_LIFETIME,
        key_id=settings.token_key_id,
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=_secure(request),
        samesite="lax",
        path="/",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def session_actor(ctx: ApiContext, request: Request) -> Actor | None:
    """The signed-in actor, or None (no cookie, or one that is not a valid session)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    read: tuple[str, Actor | None] | None = getattr(request.state, "session_read", None)
    if read is not None and read[0] == token:  # a page asks twice: its route and its layout
        return read[1]
    actor = cookie_actor(ctx, token)
    request.state.session_read = (token, actor)
    return actor


def cookie_actor(ctx: ApiContext, token: str) -> Actor | None:
    """The actor a session cookie's token names, or None when it is not a valid session."""
    settings, now = ctx.settings, _now(ctx)
    try:
        return read_token(
            settings.token_secrets(),
            token,
            now=now,
            current=settings.token_key_id,
            revoked=lambda jti: ctx.revocations.is_revoked(jti, now=now),
        )
    except Exception:  # any refusal of the cookie means: not signed in
        return None


def session_reaching(ctx: ApiContext, request: Request, area: Area) -> Actor | None:
    """The signed-in actor if its role reaches ``area`` (services/access.py), else None."""
    actor = session_actor(ctx, request)
    return actor if actor is not None and access.may(actor, area) else None


def _mac(secret: bytes, nonce: str, session: str) -> str:
    bound = hashlib.sha256(session.encode()).hexdigest()
    return hmac.new(secret, f"csrf|{nonce}|{bound}".encode(), hashlib.sha256).hexdigest()


def csrf_token(ctx: ApiContext, request: Request) -> str:
    """The token this request's forms carry; sets up the nonce cookie when there is none
    (``csrf_cookie`` writes it onto the response)."""
    nonce = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf_nonce", None)
    if not nonce:
        nonce = secrets.token_urlsafe(24)
        request.state.csrf_nonce = nonce
    session = getattr(request.state, "session_token", None)
    if session is None:
        session = request.cookies.get(SESSION_COOKIE, "")
    return _mac(ctx.settings.signing_secret(), nonce, session)


def csrf_cookie(request: Request, response: Response) -> None:
    """Write the nonce cookie that ``csrf_token`` created for this request, if any."""
    nonce = getattr(request.state, "csrf_nonce", None)
    if nonce and not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(
            CSRF_COOKIE, nonce, httponly=True, secure=_secure(request), samesite="lax", path="/"
        )


async def csrf_guard(request: Request) -> None:
    """Every page form post must carry the token of its own cookies (router dependency)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    ctx: ApiContext = context(request)
    form = await request.form()
    nonce = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD)
    expected = _mac(ctx.settings.signing_secret(), nonce, request.cookies.get(SESSION_COOKIE, ""))
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CsrfRefused(
            "this form is out of date or did not come from this site; go back and try again",
            code="auth.csrf",
        )


async def _form(request: Request) -> FormData:
    return await request.form()


CheckedForm = Annotated[FormData, Depends(_form)]
