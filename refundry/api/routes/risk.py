"""An agent suspends or restores a customer's refund rights (SPEC §5).

``POST /v1/customers/{customer_id}/suspension`` records a ``suspend`` restriction as a manual
agent rule (rule ``agent``, the agent's reason as its explanation) through the risk service, so
the row, the customer's notification and the audit entry (the agent as actor) are written in
one transaction exactly as a risk rule's would be. It lasts until an agent lifts it:
``DELETE`` with a reason restores the rights (``lift_suspension``). While suspended, opening a
case is refused with ``case.refund_rights_suspended``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict

from refundry.api.deps import ActorDep, ContextDep, require_roles
from refundry.api.fields import Id, Reason
from refundry.api.schemas_cases import problems
from refundry.domain.risk import RiskDecision, RuleMatch
from refundry.services.audit import AuditTrail
from refundry.services.risk import lift_suspension, record_restriction
from refundry.services.uow import UnitOfWork

__all__ = ["router"]

router = APIRouter(prefix="/v1/customers", tags=["risk"])

CustomerId = Annotated[Id, Path()]
AGENT_RULE = "agent"  # the rule name of a suspension an agent decided by hand


class SuspendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class LiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class Suspension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str
    suspended: bool
    created: bool  # False: a suspension was already in force, nothing was written
    restriction_ids: list[int]  # the rows written (POST) or lifted (DELETE)
    at: datetime


@router.post(
    "/{customer_id}/suspension",
    response_model=Suspension,
    status_code=201,
    responses={
        200: {"model": Suspension, "description": "already suspended; nothing written"},
        **problems(401, 403, 404, 422),
    },
)
def suspend(
    customer_id: CustomerId,
    body: SuspendBody,
    actor: ActorDep,
    ctx: ContextDep,
    response: Response,
) -> Suspension:
    """Suspend the customer's refund rights until an agent lifts it."""
    require_roles(actor, "agent", "admin")
    now = ctx.now()
    decision = RiskDecision("suspend", (RuleMatch(AGENT_RULE, "suspend", 0, body.reason.strip()),))
    with UnitOfWork(ctx.engine) as uow:
        trail = AuditTrail(actor=actor.tag, at=now)
        ids = record_restriction(uow.conn, customer_id, decision=decision, now=now, trail=trail)
        trail.flush(uow.conn)
        uow.commit()
    if not ids:
        response.status_code = 200
    return Suspension(
        customer_id=customer_id, suspended=True, created=bool(ids), restriction_ids=ids, at=now
    )


@router.delete(
    "/{customer_id}/suspension",
    response_model=Suspension,
    responses=problems(401, 403, 404, 409, 422),
)
def lift(customer_id: CustomerId, body: LiftBody, actor: ActorDep, ctx: ContextDep) -> Suspension:
    """Restore the customer's refund rights (409 ``risk.not_suspended`` if none in force)."""
    require_roles(actor, "agent", "admin")
    now = ctx.now()
    ids = lift_suspension(
        ctx.engine, customer_id=customer_id, actor=actor.tag, reason=body.reason.strip(), now=now
    )
    return Suspension(
        customer_id=customer_id, suspended=False, created=False, restriction_ids=ids, at=now
    )
