"""Identity checks (SPEC §5, docs/identity.md): a one-time code texted before a submission
that needs it, or a passkey: the caller's passkeys (register, list, remove) and the options
for a passkey answer bound to one case submission (given back as POST /v1/cases's
``passkey``)."""

from __future__ import annotations

import json
import secrets

from fastapi import APIRouter, Response

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import (
    AssertionOptionsRequest,
    CodeIssued,
    CodeRequest,
    problems,
)
from refundry.api.schemas_passkeys import PasskeyCreate, PasskeyList, PasskeyOptions, PasskeyView
from refundry.services import access
from refundry.services import passkeys as keys
from refundry.services.customers.identity import request_code
from refundry.services.orders.views import read_order

__all__ = ["router"]

router = APIRouter(prefix="/v1/identity", tags=["identity"], route_class=OneHopRoute)


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


def _options(text: str) -> PasskeyOptions:
    return PasskeyOptions(
        options=json.loads(text), expires_in_seconds=int(keys.CHALLENGE_TTL.total_seconds())
    )


@router.post(
    "/passkeys/registration-options",
    response_model=PasskeyOptions,
    responses=problems(401, 403),
)
def registration_options(actor: ActorDep, ctx: ContextDep) -> PasskeyOptions:
    """The ``publicKey`` options for ``navigator.credentials.create`` on the shop's site
    (relying party ``webauthn_rp_id``); the answer goes to POST /v1/identity/passkeys within
    ``expires_in_seconds``."""
    access.require(actor, "identity.passkeys")
    return _options(
        keys.registration_options(ctx.engine, ctx.desk.relying_party, actor=actor, now=ctx.now())
    )


@router.post(
    "/passkeys", status_code=201, response_model=PasskeyView, responses=problems(401, 403, 409, 422)
)
def add_passkey(body: PasskeyCreate, actor: ActorDep, ctx: ContextDep) -> PasskeyView:
    """Keep the passkey made with the options above (user verification required; the origin
    must be one of ``webauthn_origins``). 422 ``identity.passkey_*`` when it does not verify."""
    access.require(actor, "identity.passkeys")
    made = keys.register_passkey(
        ctx.engine,
        ctx.desk.relying_party,
        actor=actor,
        credential=body.credential.model_dump(mode="json"),
        name=body.name,
        now=ctx.now(),
    )
    return PasskeyView.model_validate(made, from_attributes=True)


@router.get("/passkeys", response_model=PasskeyList, responses=problems(401, 403))
def list_passkeys(actor: ActorDep, ctx: ContextDep) -> PasskeyList:
    access.require(actor, "identity.passkeys")
    return PasskeyList(
        items=[
            PasskeyView.model_validate(p, from_attributes=True)
            for p in keys.list_passkeys(ctx.engine, actor)
        ]
    )


@router.delete("/passkeys/{passkey_id}", status_code=204, responses=problems(401, 403, 404, 422))
def remove_passkey(passkey_id: Id, actor: ActorDep, ctx: ContextDep) -> Response:
    """From now on the passkey's answers are refused (``identity.passkey_unknown``)."""
    access.require(actor, "identity.passkeys")
    keys.remove_passkey(ctx.engine, actor=actor, passkey_id=passkey_id, now=ctx.now())
    return Response(status_code=204)


@router.post(
    "/passkeys/assertion-options",
    response_model=PasskeyOptions,
    responses=problems(401, 403, 404, 422),
)
def assertion_options(
    body: AssertionOptionsRequest, actor: ActorDep, ctx: ContextDep
) -> PasskeyOptions:
    """The ``publicKey`` options for ``navigator.credentials.get``, with a challenge bound to
    this submission (order, lines, reason, kind, return method): its answer, given as POST
    /v1/cases's ``passkey`` with the same fields, stands instead of the SMS code; for any other
    submission it is ``identity.passkey_challenge_mismatch``. 422 ``identity.no_passkey``
    when the customer has none."""
    access.require(actor, "identity.request_code")
    read_order(ctx.engine, body.order_id, actor)  # another's order: order.not_found
    request = body.request_for(body.order_id)
    return _options(
        keys.assertion_options(
            ctx.engine,
            ctx.desk.relying_party,
            purpose="case.submit",
            actor=actor,
            bound_to=keys.submission_binding(request),
            now=ctx.now(),
        )
    )
