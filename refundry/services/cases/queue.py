"""The agents' work queue: the cases that wait for a person.

A case is in the queue while it waits for a person: ``under_review`` (no rule decided),
``needs_manual_review`` (risk, or a plan whose deductions exceed its amount),
``refund_failed`` (the gateway refused: retry or move the money to the wallet), and any case
with a debt left to recover (极速退款 paid for goods the inspection refused:
``rejected_after_inspection``, or ``refunding``/``refunded``/``completed`` after a partial
inspection). Each item carries the risk decision with its reasons and the review explanation
stored on the case, and ``suggested_actions``: what the desk is asked to do with it, each an
action the caller may take now (services/access.py) and one POST of the API
(``/v1/cases/{id}/<action>``, ``_`` written ``-``). Oldest first (by the time the case
entered its state), with an opaque cursor. The desk only (services/access.py, area
``agent.queue``). Filters narrow it by state, reason and merchant (a case asking for one of the
merchant's lines), by how long it has waited (``waiting_since``: cases that entered their state
at or before that time), by its risk decision (``risk``: one of domain/risk.py's decisions, or
``flagged`` for any but ``approve``) and by who holds it (``assignee``: an actor tag;
``unassigned``: nobody).

The risk filter reads the stored risk document (``cases.risk``, written by
services/cases/opening.py with ``json.dumps``) by its opening: ``decision`` is its first key, so
``{"decision": "suspend"`` starts the text of every case that decision was taken on and of no
other, whatever the rules' explanations say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, or_, select

from refundry.domain.errors import InvalidInput
from refundry.domain.process_policy import RISK_DECISIONS
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases.record import case_from_row
from refundry.services.cases.views import like_json
from refundry.services.reads import Amount, decode_time_cursor, encode_cursor
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, orders, refund_tenders

__all__ = ["FLAGGED", "Queue", "QueueItem", "agent_queue"]

FLAGGED = "flagged"  # the risk filter's value for any decision but approve

_WAITING = ("under_review", "needs_manual_review", "refund_failed")
_WHY = {
    "under_review": "no review rule decided: an agent approves or rejects",
    "needs_manual_review": "held for manual review: resolve with a waiver or a wallet debit",
    "refund_failed": "the gateway refused the refund: retry, or move the money to the wallet",
}
_DEBT = "an express refund paid for goods the inspection refused: recover the debt"
# What the desk is asked to do with a waiting case, in the order a front end offers it: each
# is an action of services/access.py (``case_actions_for``), and one POST of the API each.
_SUGGESTED: dict[str, tuple[str, ...]] = {
    "under_review": ("approve", "reject", "escalate"),
    "needs_manual_review": ("resolve", "approve", "reject"),
    "refund_failed": ("retry_refund", "refund_to_wallet"),
}
_SUGGESTED_FOR_DEBT = ("recover_debt", "write_off_debt")


@dataclass(frozen=True, slots=True)
class QueueItem:
    case_id: str
    order_id: str
    customer_id: str
    state: str
    state_since: datetime
    kind: str  # refund_only | return_and_refund
    reason: str
    amount: Amount  # the plan's total when the case was opened
    debt: Amount  # what an express refund paid for goods the inspection refused
    why: str  # why the case waits for an agent
    risk: dict[str, Any] | None  # the risk decision and its reasons (cases.risk)
    review: dict[str, Any] | None  # the review rule and its explanation (cases.review)
    merchant_ids: tuple[str, ...]  # the merchants whose lines the case asks for
    inspection: dict[str, Any] | None
    failure_codes: tuple[str, ...]  # the gateway's codes, for refund_failed
    suggested_actions: tuple[str, ...]  # what to do now, each allowed to the caller now
    assignee: str | None  # the actor tag of the agent holding the case (claim / assign)


def _suggested(row: Any, actor: Actor) -> tuple[str, ...]:
    allowed = set(access.case_actions_for(case_from_row(row), actor))
    wanted = _SUGGESTED.get(row.state, ()) + (_SUGGESTED_FOR_DEBT if row.debt > 0 else ())
    return tuple(action for action in wanted if action in allowed)


@dataclass(frozen=True, slots=True)
class Queue:
    items: tuple[QueueItem, ...]
    next_cursor: str | None


def _json(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


def _opening(decision: str) -> str:
    """The first characters of a risk document of ``decision`` (LIKE-escaped: ``_`` is a
    wildcard there)."""
    head = json.dumps({"decision": decision})[:-1]
    return head.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _risk_is(risk: str) -> ColumnElement[bool]:
    """Cases whose risk decision is ``risk`` (``flagged``: any but approve)."""
    c = cases.c
    if risk == FLAGGED:
        return and_(c.risk.is_not(None), c.risk.not_like(_opening("approve") + "%", escape="\\"))
    if risk not in RISK_DECISIONS:
        raise InvalidInput(
            f"risk must be {FLAGGED} or one of {', '.join(RISK_DECISIONS)}",
            code="request.invalid",
            field="risk",
        )
    return c.risk.like(_opening(risk) + "%", escape="\\")


def agent_queue(
    engine: Engine,
    actor: Actor,
    *,
    limit: int = 20,
    cursor: str | None = None,
    state: str | None = None,
    reason: str | None = None,
    merchant: str | None = None,
    waiting_since: datetime | None = None,
    risk: str | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
) -> Queue:
    """Cases waiting for an agent, with their risk and review explanations; ``state``,
    ``reason``, ``merchant``, ``waiting_since``, ``risk`` and ``assignee`` (None: any) and
    ``unassigned`` narrow the queue."""
    access.require(actor, "agent.queue")
    c = cases.c
    query = (
        select(cases, orders.c.currency)
        .join(orders, orders.c.id == c.order_id)
        .where(or_(c.state.in_(_WAITING), c.debt > 0))
    )
    if state:
        query = query.where(c.state == state)
    if reason:
        query = query.where(c.reason == reason)
    if merchant:
        query = query.where(c.merchant_ids.like(like_json(merchant), escape="\\"))
    if waiting_since is not None:
        query = query.where(c.state_since <= waiting_since)
    if risk:
        query = query.where(_risk_is(risk))
    if assignee:
        query = query.where(c.assignee == assignee)
    if unassigned:
        query = query.where(c.assignee.is_(None))
    if cursor is not None:
        after, case_id = decode_time_cursor(cursor)
        query = query.where(
            or_(c.state_since > after, and_(c.state_since == after, c.id > case_id))
        )
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(query.order_by(c.state_since, c.id).limit(limit + 1)).all()
        failed = [r.refund_id for r in rows if r.state == "refund_failed" and r.refund_id]
        codes: dict[str, list[str]] = {}
        for refund_id, code in uow.conn.execute(
            select(refund_tenders.c.refund_id, refund_tenders.c.failure_code)
            .where(refund_tenders.c.refund_id.in_(failed), refund_tenders.c.status == "failed")
            .order_by(refund_tenders.c.tender_id)
        ):
            codes.setdefault(refund_id, []).append(str(code))
    page = rows[:limit]
    return Queue(
        items=tuple(
            QueueItem(
                case_id=r.id,
                order_id=r.order_id,
                customer_id=r.customer_id,
                state=r.state,
                state_since=r.state_since,
                kind=r.kind,
                reason=r.reason,
                amount=Amount(amount=int(r.amount), currency=r.currency),
                debt=Amount(amount=int(r.debt), currency=r.currency),
                why=_WHY.get(r.state, _DEBT),
                risk=_json(r.risk),
                review=_json(r.review),
                merchant_ids=tuple(json.loads(r.merchant_ids)),
                inspection=_json(r.inspection),
                failure_codes=tuple(codes.get(r.refund_id, [])) if r.refund_id else (),
                suggested_actions=_suggested(r, actor),
                assignee=r.assignee,
            )
            for r in page
        ),
        next_cursor=(
            encode_cursor(page[-1].state_since.isoformat(), page[-1].id)
            if len(rows) > limit
            else None
        ),
    )
