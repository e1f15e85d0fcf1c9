"""Typed dependencies for the routes (``ActorDep``, ``ContextDep``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from refundry.api.auth import Unauthorized, read_token
from refundry.bootstrap import Runtime
from refundry.services.access import require_role as require_roles  # access decides, not routes
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.process import Actor
from refundry.services.ports import PaymentGateway, SmsSender
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
    return read_token(
        settings.token_secrets(),
        token.strip(),
        now=now,
        current=settings.token_key_id,
        revoked=lambda jti: ctx.revocations.is_revoked(jti, now=now),
    )


ActorDep = Annotated[Actor, Depends(current_actor)]
