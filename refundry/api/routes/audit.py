"""An order's audit trail: ``GET /v1/orders/{order_id}/audit``.

Customers see their own orders, merchants the orders holding one of their lines, agents and
admins any order; anything else is ``order.not_found``, so ids cannot be probed. On an order
shared with other merchants, a merchant sees only the entries that name one of its own lines
and none of the others' (order totals and other merchants' lines stay hidden; fail closed: an
entry is hidden if any of its values equals another merchant's line id). The answer
carries the order's entries and whether they verify where they stand: signatures, links to the
entries before them, the chain's head (``verify_entries``: the cost does not grow with the
chain; docs/audit.md). The rules are services/access.py's, the reading
services/audit/views.py's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.services.audit import views as audit_views

__all__ = ["router"]

router = APIRouter(prefix="/v1/orders", tags=["audit"], route_class=OneHopRoute)

OrderId = Annotated[Id, Path()]


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: int
    at: datetime
    actor: str
    action: str
    refund_id: str | None
    data: dict[str, Any]


class OrderAudit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    entries: list[AuditEntry]  # in chain order
    hidden_entries: int  # entries of this order withheld from a merchant (other merchants')
    # the order's entries verify (signatures, links to the entries before them, the head)
    chain_verified: bool
    chain_problem: str | None  # where the chain breaks, when it does


@router.get("/{order_id}/audit", response_model=OrderAudit, responses=problems(401, 404, 422))
def order_audit(order_id: OrderId, actor: ActorDep, ctx: ContextDep) -> OrderAudit:
    """The order's audit entries and whether they verify in the signed chain."""
    trail = audit_views.order_audit(ctx.engine, order_id, actor)
    return OrderAudit.model_validate(trail, from_attributes=True)
