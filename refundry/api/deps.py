"""Typed dependencies for the routes (``ActorDep``, ``ContextDep``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from refundry.api.auth import Unauthorized, actor_of, token_claims
from refundry.bootstrap import Runtime
from refundry.services.access import require_role as require_roles  # access decides, not routes
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.process import Actor
from refundry.services.ports import PaymentGateway, SmsSender
from refundry.services.refunds.memo import Memo
from refundry.services.tokens import RevocationList
from refundry.settings import Settings

if TYPE_CHECKING:
    from refundry.api.kept import KeptAnswers

__all__ = [
    "ActorDep",
    "ApiContext",
    "ContextDep",
    "bearer_actor",
    "current_actor",
    "require_roles",
]


SIGNED_TOKENS = 10_000  # tokens whose checked claims a process keeps (the oldest go first)


@dataclass(slots=True)
class ApiContext:
    engine: Engine
    settings: Settings
    desk: CaseDesk
    sms: SmsSender
    gateway: PaymentGateway | None
    clock: object  # callable returning an aware datetime
    runtime: Runtime
    revocations: RevocationList
    kept: KeptAnswers  # orders and order pages kept while unchanged (refundry/api/kept.py)
    # The claims of the bearer tokens whose signature this process checked: a client sends the
    # same token with every request, and checking it (base64, JSON, HMAC) again was a tenth of
    # a preview's CPU. The secrets are the settings', fixed for the app's life; expiry and
    # revocation are checked on every request.
    signed: Memo[str, Any] = field(default_factory=lambda: Memo(SIGNED_TOKENS))

    def now(self) -> datetime:
        return self.clock()  # type: ignore[operator,no-any-return]


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def _context(request: Request) -> ApiContext:
    # async: FastAPI runs a sync dependency on its thread pool, a hop (tens of µs and two
    # context switches) for a dictionary read; the same for current_actor below.
    return context(request)


ContextDep = Annotated[ApiContext, Depends(_context)]


# Declares the bearer scheme in the OpenAPI document on every operation that reads it;
# refundry answers a missing or wrong token itself (401 problem+json, not FastAPI's 403).
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="`rf1.…` tokens signed by this server (`refundry token`; docs/api.md)",
    auto_error=False,
)


async def current_actor(
    request: Request,
    ctx: ContextDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Actor:
    return bearer_actor(ctx, request.headers.get("authorization", ""))


def bearer_actor(ctx: ApiContext, header: str) -> Actor:
    """The actor of an ``Authorization: Bearer …`` header: valid, not expired, not revoked."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a bearer token is required", code="auth.unauthorized")
    settings, now = ctx.settings, ctx.now()
    token = token.strip()
    claims = ctx.signed.get(token)
    if claims is None:  # a token not seen yet: its signature checked (a refusal is not kept)
        claims = token_claims(settings.token_secrets(), token, current=settings.token_key_id)
        ctx.signed.put(token, claims)
    return actor_of(claims, now=now, revoked=lambda jti: ctx.revocations.is_revoked(jti, now=now))


ActorDep = Annotated[Actor, Depends(current_actor)]
