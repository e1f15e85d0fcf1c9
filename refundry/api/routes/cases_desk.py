"""The desk's acts on a case (agents and admins; a merchant escalates a case of its own lines):
one POST each, each with its own access check in the service it calls (services/access.py),
each audited with its domain event in the same transaction, each answering the case as the
caller sees it now (with its timeline, deadlines and ``allowed_actions``).

- ``escalate``: to manual review, saying why (services/cases/handling.py);
- ``note``: an internal note (never shown to the customer or the merchant);
- ``claim``, ``assign``: who holds the case;
- ``retry-refund``, ``refund-to-wallet``: a failed tender of the case's refund
  (services/refunds/failed_refunds.py);
- ``recover-debt``, ``write-off-debt``: the express-refund debt (services/cases/debts.py).

Every action the agent queue suggests (services/cases/queue.py) is one of these or of
routes/cases.py's transitions (approve, reject, resolve).
"""

from __future__ import annotations

from fastapi import APIRouter

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.routes.cases import ACT, CaseId, case_answer
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import (
    AssignBody,
    CaseDetail,
    DebtRecovery,
    DebtWriteOff,
    Empty,
    Escalation,
    NoteBody,
    TenderAction,
)
from refundry.services.cases import debts, handling
from refundry.services.refunds.failed_refunds import case_tender_to_wallet, retry_case_tender

__all__ = ["router"]

router = APIRouter(prefix="/v1/cases", tags=["case desk"], route_class=OneHopRoute)


@router.post("/{case_id}/escalate", response_model=CaseDetail, responses=ACT)
def escalate(case_id: CaseId, body: Escalation, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """An agent, or the merchant whose lines these all are, hands the case to manual review."""
    handling.escalate(ctx.desk, case_id, actor=actor, now=ctx.now(), comment=body.comment)
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/note", response_model=CaseDetail, responses=ACT)
def add_note(case_id: CaseId, body: NoteBody, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """An internal note on the case's timeline, for agents and admins only."""
    handling.add_note(ctx.desk, case_id, actor=actor, now=ctx.now(), text=body.text)
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/claim", response_model=CaseDetail, responses=ACT)
def claim(case_id: CaseId, body: Empty, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """The caller takes the case (409 ``case.already_claimed`` while another agent holds it)."""
    handling.claim(ctx.desk, case_id, actor=actor, now=ctx.now())
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/assign", response_model=CaseDetail, responses=ACT)
def assign(case_id: CaseId, body: AssignBody, actor: ActorDep, ctx: ContextDep) -> CaseDetail:
    """Give the case to an agent, from whoever held it."""
    handling.assign(ctx.desk, case_id, actor=actor, now=ctx.now(), agent_id=body.agent_id)
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/retry-refund", response_model=CaseDetail, responses=ACT)
def retry_refund(
    case_id: CaseId, body: TenderAction, actor: ActorDep, ctx: ContextDep
) -> CaseDetail:
    """Ask the gateway again for a failed tender of the case's refund (a new attempt, with a
    new idempotency key at the gateway)."""
    retry_case_tender(
        ctx.engine,
        case_id,
        tender_id=body.tender_id,
        actor=actor,
        now=ctx.now(),
        reason=body.reason,
    )
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/refund-to-wallet", response_model=CaseDetail, responses=ACT)
def refund_to_wallet(
    case_id: CaseId, body: TenderAction, actor: ActorDep, ctx: ContextDep
) -> CaseDetail:
    """Put a failed tender's money in the customer's wallet instead (409
    ``refund.gateway_outcome_open`` while the gateway may still pay it)."""
    if ctx.gateway is None:  # the bootstrap always builds one; a test app may leave it out
        raise RuntimeError("refund-to-wallet needs the payment gateway (settings: gateway)")
    case_tender_to_wallet(
        ctx.engine,
        case_id,
        tender_id=body.tender_id,
        actor=actor,
        now=ctx.now(),
        reason=body.reason,
        gateway=ctx.gateway,
    )
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/recover-debt", response_model=CaseDetail, responses=ACT)
def recover_debt(
    case_id: CaseId, body: DebtRecovery, actor: ActorDep, ctx: ContextDep
) -> CaseDetail:
    """Record part of an express-refund debt as recovered: from the customer's wallet, or paid
    back outside refundry (with the shop's reference)."""
    debts.recover_debt(
        ctx.desk,
        case_id,
        actor=actor,
        now=ctx.now(),
        amount=body.amount.amount,
        currency=body.amount.currency,
        method=body.method,
        reference=body.reference,
        comment=body.comment,
    )
    return case_answer(ctx, case_id, actor)


@router.post("/{case_id}/write-off-debt", response_model=CaseDetail, responses=ACT)
def write_off_debt(
    case_id: CaseId, body: DebtWriteOff, actor: ActorDep, ctx: ContextDep
) -> CaseDetail:
    """Give up part of an express-refund debt, saying why."""
    debts.write_off_debt(
        ctx.desk,
        case_id,
        actor=actor,
        now=ctx.now(),
        amount=body.amount.amount,
        currency=body.amount.currency,
        comment=body.comment,
    )
    return case_answer(ctx, case_id, actor)
