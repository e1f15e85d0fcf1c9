"""An agent suspends or restores a customer's refund rights (SPEC §5).

``POST /v1/customers/{customer_id}/suspension`` records a ``suspend`` restriction as a manual
agent rule (rule ``agent``, the agent's reason as its explanation) through the risk service, so
the row, the customer's notification and the audit entry (the agent as actor) are written in
one transaction exactly as a risk rule's would be. It lasts until an agent lifts it:
``DELETE`` with a reason restores the rights (``lift_suspension``). While suspended, opening a
case is refused with ``case.refund_rights_suspended``. Both are services/customers/suspensions.py's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id, Reason
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.services.customers import suspensions

__all__ = ["router"]

router = APIRouter(prefix="/v1/customers", tags=["risk"], route_class=OneHopRoute)

CustomerId = Annotated[Id, Path()]


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
def suspend_refund_rights(
    customer_id: CustomerId,
    body: SuspendBody,
    actor: ActorDep,
    ctx: ContextDep,
    response: Response,
) -> Suspension:
    """Suspend the customer's refund rights until an agent lifts it."""
    done = suspensions.suspend(
        ctx.engine, actor=actor, customer_id=customer_id, reason=body.reason, now=ctx.now()
    )
    if not done.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/customers/{quote(customer_id, safe='')}"
    return Suspension.model_validate(done, from_attributes=True)


@router.delete(
    "/{customer_id}/suspension",
    response_model=Suspension,
    responses=problems(401, 403, 404, 409, 422),
)
def lift_suspension(
    customer_id: CustomerId, body: LiftBody, actor: ActorDep, ctx: ContextDep
) -> Suspension:
    """Restore the customer's refund rights (409 ``risk.not_suspended`` if none in force)."""
    done = suspensions.lift(
        ctx.engine, actor=actor, customer_id=customer_id, reason=body.reason, now=ctx.now()
    )
    return Suspension.model_validate(done, from_attributes=True)
