"""The agents' work queue: ``GET /v1/agent/queue`` (agent and admin tokens), read by
services/cases/queue.py.

A case is in the queue while it waits for a person: ``under_review`` (no rule decided),
``needs_manual_review`` (risk, or a plan whose deductions exceed its amount),
``refund_failed`` (the gateway refused: retry or move the money to the wallet) and
any case with a debt left to recover (极速退款 paid for goods the inspection refused:
``rejected_after_inspection``, or ``refunding``/``refunded``/``completed`` after a partial
inspection).
Each item carries the risk decision with its reasons and the review explanation stored on the
case. Oldest first (by the time the case entered its state), with an opaque cursor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.money import Money
from refundry.api.routes.me import Cursor, Limit
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import CaseAction, problems
from refundry.services.cases import queue as work_queue

__all__ = ["router"]

router = APIRouter(prefix="/v1/agent", tags=["agent"], route_class=OneHopRoute)


class QueueItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: str
    order_id: str
    customer_id: str
    state: str
    state_since: datetime
    kind: str  # refund_only | return_and_refund
    reason: str
    amount: Money  # the plan's total when the case was opened
    debt: Money  # what an express refund paid for goods the inspection refused
    why: str  # why the case waits for an agent
    risk: dict[str, Any] | None  # the risk decision and its reasons (cases.risk)
    review: dict[str, Any] | None  # the review rule and its explanation (cases.review)
    inspection: dict[str, Any] | None
    failure_codes: list[str]  # the gateway's codes, for refund_failed
    # what to do now: each one POST /v1/cases/{case_id}/<action> (``_`` written ``-``)
    suggested_actions: list[CaseAction]


class Queue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[QueueItem]
    next_cursor: str | None


@router.get("/queue", response_model=Queue, responses=problems(401, 403, 422))
def agent_queue(
    actor: ActorDep, ctx: ContextDep, limit: Limit = 20, cursor: Cursor = None
) -> Queue:
    """Cases waiting for an agent, with their risk and review explanations."""
    waiting = work_queue.agent_queue(ctx.engine, actor, limit=limit, cursor=cursor)
    return Queue.model_validate(waiting, from_attributes=True)
