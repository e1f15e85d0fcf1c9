"""After-sales cases: open one, read and list them, one POST per transition.

Object-level access is the services' (``load_case``: another customer's or merchant's case is
``case.not_found``); the list applies the same rule in its query. Every answer is the case as
the caller may see it, with the actions the caller may take now.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Path, Query
from sqlalchemy import Connection, and_, or_, select

from refundry.api.deps import ActorDep, ApiContext, ContextDep, require_roles
from refundry.api.fields import Id, OneLine
from refundry.api.schemas_cases import (
    CaseAction,
    CaseCreate,
    CaseLine,
    CaseList,
    CaseView,
    Comment,
    Empty,
    InspectionBody,
    InspectionView,
    Kind,
    RatingBody,
    Reason,
    Rejection,
    Resolution,
    ReviewView,
    RiskView,
    ShipBody,
    ShipmentView,
    problems,
)
from refundry.domain.case import CaseState
from refundry.domain.errors import InvalidInput
from refundry.domain.reader import ID_LENGTH, text_problem
from refundry.services import case_actions
from refundry.services.case_open import CaseRate, check_case_rate, open_case
from refundry.services.cases import Actor, CaseRow, allowed_for, load_case, may_see
from refundry.services.errors import RateLimited
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, order_lines, orders

__all__ = ["RateLimited", "router"]

router = APIRouter(prefix="/v1/cases", tags=["cases"])

CaseId = Annotated[Id, Path()]
ACT = problems(401, 403, 404, 409, 422)


def _case_rate(ctx: ApiContext) -> CaseRate:
    """At most ``case_rate_limit`` cases per ``case_rate_window_seconds``, counted from the
    ``cases`` table so that every API process sees the same count."""
    return CaseRate(
        limit=ctx.settings.case_rate_limit,
        window=timedelta(seconds=ctx.settings.case_rate_window_seconds),
    )


def _check_rate(ctx: ApiContext, customer_id: str, now: datetime) -> None:
    """An early answer before anything else is done (a one-time code is not spent on a request
    that would be refused); ``open_case`` checks again under the customer's lock."""
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        check_case_rate(uow.conn, customer_id, now, _case_rate(ctx))


def _lines(raw: Any) -> list[CaseLine]:
    return [CaseLine(line_id=x["line_id"], quantity=x["quantity"]) for x in raw or []]


def case_view(conn: Connection, row: CaseRow, actor: Actor, currency: str) -> CaseView:
    """The case as ``actor`` sees it: a merchant only its own lines, risk for staff only."""
    inspection = json.loads(row.inspection) if row.inspection else None
    accepted = json.loads(row.accepted) if row.accepted else None
    lines = json.loads(row.lines)
    if actor.role == "merchant" and json.loads(row.merchant_ids) != [actor.id]:
        mine = set(
            conn.execute(
                select(order_lines.c.line_id).where(
                    order_lines.c.order_id == row.order_id,
                    order_lines.c.merchant_id == actor.id,
                )
            ).scalars()
        )
        lines = [x for x in lines if x["line_id"] in mine]
        accepted = [x for x in accepted if x["line_id"] in mine] if accepted else accepted
        if inspection:
            inspection["accepted"] = [x for x in inspection["accepted"] if x["line_id"] in mine]
    staff = actor.role in ("agent", "admin")
    shared = actor.role == "merchant" and json.loads(row.merchant_ids) != [actor.id]
    return CaseView(
        id=row.id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        state=row.state,
        kind=row.kind,
        reason=row.reason,
        return_method=row.return_method,
        lines=_lines(lines),
        accepted=_lines(accepted) if accepted is not None else None,
        amount=None if shared else row.amount,
        currency=currency,
        description=row.description,
        evidence=json.loads(row.evidence),
        review=ReviewView.model_validate(json.loads(row.review)) if row.review else None,
        risk=RiskView.model_validate(json.loads(row.risk)) if staff and row.risk else None,
        rma=row.rma,
        return_address=row.return_address,
        shipment=ShipmentView.model_validate(json.loads(row.shipment)) if row.shipment else None,
        tracking_number=row.tracking_number,
        inspection=InspectionView(
            result=inspection["result"],
            accepted=_lines(inspection.get("accepted")),
            reason=inspection.get("reason", ""),
        )
        if inspection
        else None,
        express=bool(row.express),
        refund_id=row.refund_id,
        debt=row.debt,
        rating=row.rating,
        feedback=row.feedback,
        created_at=row.created_at,
        updated_at=row.updated_at,
        allowed_actions=cast(list[CaseAction], allowed_for(row, actor)),
    )


def _view(ctx: ApiContext, case_id: str, actor: Actor) -> CaseView:
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        row = load_case(uow.conn, case_id, actor)
        currency = uow.conn.execute(
            select(orders.c.currency).where(orders.c.id == row.order_id)
        ).scalar_one()
        return case_view(uow.conn, row, actor, currency)


@router.post("", status_code=201, response_model=CaseView, responses={**ACT, **problems(429)})
def open_(body: CaseCreate, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """Open a case (the customer, or an agent for it) and run the automatic review. A customer
    asking for more than the policy amount, or whom risk reviews, gives a one-time code
    (``otp``, from POST /v1/identity/codes); without one: 422 ``identity.code_required``."""
    require_roles(actor, "customer", "agent", "admin")
    now = ctx.now()
    if actor.role == "customer":
        _check_rate(ctx, actor.id, now)
    opened = open_case(
        ctx.desk,
        actor=actor,
        request=body.request_for(body.order_id),
        now=now,
        description=body.description,
        evidence=body.evidence,
        otp=(body.otp.code_id, body.otp.code) if body.otp else None,
        rate=_case_rate(ctx) if actor.role == "customer" else None,
    )
    return _view(ctx, opened.case_id, actor)


@router.get("/{case_id}", response_model=CaseView, responses=problems(401, 404, 422))
def get_case(case_id: CaseId, actor: ActorDep, ctx: ContextDep) -> CaseView:
    return _view(ctx, case_id, actor)


def _encode_cursor(at: datetime, case_id: str) -> str:
    raw = json.dumps([at.isoformat(), case_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, case_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        # The id goes into the query: what no id may hold (NUL: PostgreSQL refuses it) is forged.
        if (
            when.tzinfo is None
            or not isinstance(case_id, str)
            or text_problem(case_id, max_length=ID_LENGTH)
        ):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "not a cursor this API gave", code="request.invalid", field="cursor"
        ) from None
    return when, case_id


def _like_json(value: str) -> str:
    """A LIKE pattern matching ``value`` as an element of a stored JSON list."""
    quoted = json.dumps(value)
    escaped = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


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
    query = select(cases, orders.c.currency).join(orders, orders.c.id == cases.c.order_id)
    if actor.role == "customer":
        query = query.where(cases.c.customer_id == actor.id)
    elif actor.role == "merchant":
        query = query.where(cases.c.merchant_ids.like(_like_json(actor.id), escape="\\"))
    elif actor.role not in ("agent", "admin"):
        return CaseList(items=[], next_cursor=None)
    for column, value in (
        (cases.c.state, state.value if state else None),
        (cases.c.order_id, order_id),
        (cases.c.kind, kind),
        (cases.c.reason, reason),
    ):
        if value is not None:
            query = query.where(column == value)
    if cursor is not None:
        at, last_id = _decode_cursor(cursor)
        query = query.where(
            or_(cases.c.created_at < at, and_(cases.c.created_at == at, cases.c.id < last_id))
        )
    query = query.order_by(cases.c.created_at.desc(), cases.c.id.desc()).limit(limit + 1)
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        rows = list(uow.conn.execute(query))
        page = rows[:limit]
        items = [case_view(uow.conn, r, actor, r.currency) for r in page if may_see(r, actor)]
    more = len(rows) > limit
    return CaseList(
        items=items,
        next_cursor=_encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )


# -- transitions: one POST each --------------------------------------------------------------


@router.post("/{case_id}/approve", response_model=CaseView, responses=ACT)
def approve(case_id: CaseId, body: Comment, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """An agent, or the merchant whose lines these all are, approves."""
    case_actions.approve(ctx.desk, case_id, actor=actor, now=ctx.now(), comment=body.comment)
    return _view(ctx, case_id, actor)


@router.post("/{case_id}/reject", response_model=CaseView, responses=ACT)
def reject(case_id: CaseId, body: Rejection, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """An agent or the merchant rejects, with a comment the customer reads."""
    case_actions.reject(ctx.desk, case_id, actor=actor, now=ctx.now(), comment=body.comment)
    return _view(ctx, case_id, actor)


@router.post("/{case_id}/cancel", response_model=CaseView, responses=ACT)
def cancel(case_id: CaseId, body: Empty, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """The customer withdraws the case before the return ships."""
    case_actions.cancel(ctx.desk, case_id, actor=actor, now=ctx.now())
    return _view(ctx, case_id, actor)


@router.post("/{case_id}/ship", response_model=CaseView, responses=ACT)
def ship(case_id: CaseId, body: ShipBody, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """The customer gives the return's tracking number."""
    case_actions.ship(
        ctx.desk, case_id, actor=actor, now=ctx.now(), tracking_number=body.tracking_number
    )
    return _view(ctx, case_id, actor)


@router.post("/{case_id}/receive", response_model=CaseView, responses=ACT)
def receive(case_id: CaseId, body: Empty, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """The merchant (or an agent) has the goods back."""
    case_actions.receive(ctx.desk, case_id, actor=actor, now=ctx.now())
    return _view(ctx, case_id, actor)


@router.post("/{case_id}/inspect", response_model=CaseView, responses=ACT)
def inspect(case_id: CaseId, body: InspectionBody, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """pass refunds every unit asked, partial the accepted ones, fail (with a reason) rejects."""
    case_actions.inspect(
        ctx.desk,
        case_id,
        actor=actor,
        now=ctx.now(),
        result=body.result,
        accepted=body.accepted,
        reason=body.reason,
    )
    return _view(ctx, case_id, actor)


@router.post("/{case_id}/resolve", response_model=CaseView, responses=ACT)
def resolve(case_id: CaseId, body: Resolution, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """An agent lets a held plan apply: waiver or wallet_debit of the excess."""
    case_actions.resolve_manual_review(
        ctx.desk,
        case_id,
        actor=actor,
        now=ctx.now(),
        resolution=body.resolution,
        comment=body.comment,
    )
    return _view(ctx, case_id, actor)


@router.post("/{case_id}/rate", response_model=CaseView, responses=ACT)
def rate(case_id: CaseId, body: RatingBody, actor: ActorDep, ctx: ContextDep) -> CaseView:
    """After completion the customer rates the case (1-5), once."""
    case_actions.rate(
        ctx.desk, case_id, actor=actor, now=ctx.now(), rating=body.rating, feedback=body.feedback
    )
    return _view(ctx, case_id, actor)
