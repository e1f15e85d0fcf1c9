"""One-time codes: the customer asks for one before a submission that needs it (SPEC §5)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.schemas_cases import CodeIssued, CodeRequest, problems
from refundry.services import access
from refundry.services.customers.identity import request_code

__all__ = ["router"]

router = APIRouter(prefix="/v1/identity", tags=["identity"])


@router.post(
    "/codes",
    status_code=202,
    response_model=CodeIssued,
    responses=problems(401, 403, 409, 422, 429),
)
def issue_code(body: CodeRequest, actor: ActorDep, ctx: ContextDep) -> CodeIssued:
    """Text a one-time code to the customer's phone: 202 once the SMS provider took it
    (delivery to the phone is the provider's). The answer names the code (``code_id``, given
    back with the code as ``otp``) but never contains it. 422 ``identity.no_phone`` without
    a phone number; 409 ``identity.locked`` after too many wrong codes; 429 with Retry-After
    within the resend cooldown (``identity.resend_too_soon``) or past the hourly caps per
    customer (``identity.customer_code_limit``) and per number (``identity.phone_code_limit``)."""
    access.require(actor, "identity.request_code")
    identity = ctx.desk.process.identity
    code_id = request_code(
        ctx.engine,
        customer_id=actor.id,
        purpose=body.purpose,
        now=ctx.now(),
        policy=identity,
        sms=ctx.sms,
        secret=ctx.desk.identity_secret,
        rng=secrets,  # secrets.randbelow: SystemRandom has no randbelow
    )
    return CodeIssued(code_id=code_id, expires_in_seconds=identity.code_ttl_seconds)
