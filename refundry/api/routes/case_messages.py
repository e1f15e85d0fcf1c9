"""A case's messages to the customer and how each fared (the desk's; services/outbox/
case_messages.py): an SMS the provider refused shows here with its error and the relay's
retries, not only as ``refundry_outbox_dead`` on /metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.services.cases.views import read_case
from refundry.services.outbox.case_messages import case_messages

__all__ = ["router"]

router = APIRouter(prefix="/v1/cases", tags=["cases"], route_class=OneHopRoute)


class CaseMessageView(BaseModel):
    template: str
    created_at: datetime
    status: Literal["queued", "delivered", "retrying", "failed"]
    delivered: list[str]  # the channels that took it
    attempts: int
    error: str | None
    next_try_at: datetime | None


class CaseMessageList(BaseModel):
    items: list[CaseMessageView]


@router.get(
    "/{case_id}/messages", response_model=CaseMessageList, responses=problems(401, 403, 404, 422)
)
def list_case_messages(
    case_id: Annotated[Id, Path()], actor: ActorDep, ctx: ContextDep
) -> CaseMessageList:
    """Agents and admins: each notification of the case, oldest first: delivered, queued,
    retrying (with the provider's error and the next try) or failed (the relay gave up)."""
    found = case_messages(ctx.engine, case_id, actor)  # the desk's only: auth.forbidden
    read_case(ctx.engine, case_id, actor)  # case.not_found as everywhere
    return CaseMessageList(
        items=[CaseMessageView.model_validate(m, from_attributes=True) for m in found]
    )
