"""After-sales cases: open one, read and list them, one POST per transition.

Object-level access is the services' (services/access.py: another customer's or merchant's
case is ``case.not_found``); the list applies the same rule in its query. Every answer is the
case as the caller may see it, with the actions the caller may take now
(services/cases/views.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from refundry.api.deps import ActorDep, ApiContext, ContextDep
from refundry.api.fields import Id, OneLine
from refundry.api.money import money_context
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import (
    CaseCreate,
    CaseDetail,
    CaseList,
    CaseView,
    Comment,
    Empty,
    InspectionBody,
    Kind,
    RatingBody,
    Reason,
    Rejection,
    Resolution,
    ShipBody,
    problems,
)
from refundry.domain.case import CaseState
from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases import views as case_views
from refundry.services.cases.opening import CaseRate
from refundry.services.cases.submission import submit_case
from refundry.services.cases.views import CaseFilter, read_case_detail
from refundry.services.errors import RateLimited

__all__ = ["ACT", "CaseId", "RateLimited", "case_answer", "router"]

router = APIRouter(prefix="/v1/cases", tags=["cases"], route_class=OneHopRoute)

CaseId = Annotated[Id, Path()]
ACT = problems(401, 403, 404, 409, 422)


def _case_rate(ctx: ApiContext) -> CaseRate:
    """At most ``case_rate_limit`` cases per ``case_rate_window_seconds``, counted from the
    ``cases`` table so that every API process sees the same count."""
    return CaseRate(
        limit=ctx.settings.case_rate_limit,
        window=timedelta(seconds=ctx.settings.case_rate_window_seconds),
    )


def case_answer(ctx: ApiContext, case_id: str, actor: Actor) -> CaseDetail:
    """The case as ``actor`` sees it now, with its timeline and deadlines: the answer of every
    case route but the list."""
    found = read_case_detail(ctx.desk, case_id, actor)
    return CaseDetail.model_validate(
        found, from_attributes=True, context=money_context(found.currency)
    )


@router.post("", status_code=201, response_model=CaseDetail, responses={**ACT, **problems(429)})
def open_case(body: CaseCreate, actor: ActorDep, ctx: ContextDep, response: Response) -> CaseDetail:
    """Open a case (the customer, or an agent for it) and run the automatic review. A customer
    asking for more than the policy amount, or whom risk reviews, gives a one-time code
    (``otp``, from POST /v1/identity/codes) or a passkey's answer (``passkey``, to POST
    /v1/identity/passkeys/assertion-options for this submission); without either: 422
    ``identity.code_required``."""
    opened = submit_case(
        ctx.desk,
        actor=actor,
        request=body.request_for(body.order_id),
        now=ctx.now(),
        rate=_case_rate(ctx),
        description=body.description,
        evidence=body.evidence,
        otp=(body.otp.code_id, body.otp.code) if body.otp else None,
        passkey=body.passkey.model_dump(mode="json") if body.passkey else None,
    )
    response.headers["Location"] = f"/v1/cases/{opened.case_id}"
    return case_answer(ctx, opened.case_id, actor)


@router.get("/{case_id}", response_model=CaseDetail, responses=problems(401, 404, 422))
def get_case(case_id: CaseId, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """The case with its timeline, its deadlines and the actions the caller may take now."""
    return case_answer(ctx, case_id, actor)


@router.get("", response_model=CaseList, responses=problems(401, 422))
def list_cases(
    actor: ActorDep,
    ctx: ContextDep,
    state: CaseState | None = None,
    order_id: Annotated[Id | None, Query()] = None,
    kind: Kind | None = None,
    reason: Reason | None = None,
    cursor: Annotated[OneLine | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CaseList:
    """Newest first (created_at, then id). A customer sees its own cases, a merchant the cases
    with its lines, agents and admins all. ``next_cursor`` is null on the last page."""
    page = case_views.list_cases(
        ctx.engine,
        actor,
        where=CaseFilter(
            state=state.value if state else None, order_id=order_id, kind=kind, reason=reason
        ),
        cursor=cursor,
        limit=limit,
    )
    return CaseList(
        items=[
            CaseView.model_validate(c, from_attributes=True, context=money_context(c.currency))
            for c in page.items
        ],
        next_cursor=page.next_cursor,
    )


# -- transitions: one POST each --------------------------------------------------------------


@router.post("/{case_id}/approve", response_model=CaseDetail, responses=ACT)
def approve(case_id: CaseId, body: Comment, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """An agent, or the merchant whose lines these all are, approves."""
    case_actions.approve(ctx.desk, case_id, actor=actor, now=ctx.now(), comment=body.comment)
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/reject", response_model=CaseDetail, responses=ACT)
def reject(case_id: CaseId, body: Rejection, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """An agent or the merchant rejects, with a comment the customer reads."""
    case_actions.reject(ctx.desk, case_id, actor=actor, now=ctx.now(), comment=body.comment)
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/cancel", response_model=CaseDetail, responses=ACT)
def cancel(case_id: CaseId, body: Empty, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """The customer withdraws the case before the return ships."""
    case_actions.cancel(ctx.desk, case_id, actor=actor, now=ctx.now())
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/ship", response_model=CaseDetail, responses=ACT)
def ship(case_id: CaseId, body: ShipBody, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """The customer gives the return's tracking number."""
    case_actions.ship(
        ctx.desk, case_id, actor=actor, now=ctx.now(), tracking_number=body.tracking_number
    )
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/receive", response_model=CaseDetail, responses=ACT)
def receive(case_id: CaseId, body: Empty, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """The merchant (or an agent) has the goods back."""
    case_actions.receive(ctx.desk, case_id, actor=actor, now=ctx.now())
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/inspect", response_model=CaseDetail, responses=ACT)
def inspect(case_id: CaseId, body: InspectionBody, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """pass refunds every unit asked, partial the accepted ones, fail (with a reason) rejects."""
    case_actions.inspect(
        ctx.desk,
        case_id,
        actor=actor,
        now=ctx.now(),
        result=body.result,
        accepted=body.accepted,
        reason=body.reason,
        disposition=dict(body.disposition) if body.disposition else None,
    )
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/resolve", response_model=CaseDetail, responses=ACT)
def resolve(case_id: CaseId, body: Resolution, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """An agent lets a held plan apply: waiver or wallet_debit of the excess."""
    case_actions.resolve_manual_review(
        ctx.desk,
        case_id,
        actor=actor,
        now=ctx.now(),
        resolution=body.resolution,
        comment=body.comment,
    )
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/rate", response_model=CaseDetail, responses=ACT)
def rate(case_id: CaseId, body: RatingBody, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """After completion the customer rates the case (1-5), once."""
    case_actions.rate(
        ctx.desk, case_id, actor=actor, now=ctx.now(), rating=body.rating, feedback=body.feedback
    )
    return case_answer(ctx, case_id, actor)
