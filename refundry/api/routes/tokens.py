"""An admin revokes a bearer token before it expires: ``POST /v1/admin/tokens/revoke``.

The body carries the token itself (the shop's back end has it: it minted it), so refundry can
read its id, subject and expiry; the token must be one this server signed. From then on every
request with it is 401 ``auth.token_revoked`` — within seconds on every process (the revocation
list each process keeps is re-read every 5 s). Audited (``token.revoked``, the admin as actor).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from refundry.api.auth import token_claims
from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import BearerToken, Note
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.services import tokens
from refundry.services.access import require

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/tokens", tags=["access"], route_class=OneHopRoute)


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: BearerToken
    reason: Note = ""


class Revoked(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jti: str  # the token's id
    subject: str  # "<role>:<subject>" it named
    expires_at: datetime
    created: bool  # False: it was revoked already, nothing written


@router.post(
    "/revoke",
    response_model=Revoked,
    responses=problems(401, 403, 422),
)
def revoke_token(body: RevokeBody, actor: ActorDep, ctx: ContextDep) -> Revoked:
    """Revoke a token this server signed (admin only)."""
    require(actor, "token.revoke")
    settings = ctx.settings
    claims = token_claims(
        settings.token_secrets(), body.token.strip(), current=settings.token_key_id
    )
    jti = claims.get("jti")
    if not isinstance(jti, str):
        from refundry.domain.errors import InvalidInput

        raise InvalidInput(
            "the token has no id (issued before tokens had one): rotate the secret instead",
            code="auth.token_without_id",
            field="token",
        )
    subject = f"{claims.get('role')}:{claims.get('sub')}"
    expires_at = datetime.fromtimestamp(int(claims.get("exp", 0)), UTC)
    created = tokens.revoke_token(
        ctx.engine,
        jti=jti,
        subject=subject,
        expires_at=expires_at,
        actor=actor.tag,
        reason=body.reason.strip(),
        now=ctx.now(),
    )
    ctx.revocations.forget()
    return Revoked(jti=jti, subject=subject, expires_at=expires_at, created=created)
