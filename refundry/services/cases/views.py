"""A case as the actor may see it, and the list of the cases it may see.

Every view carries the actions the actor may take now (services/access.py,
``case_actions_for``), so a front end shows exactly the buttons the case services accept. A
merchant on a case shared with other merchants sees its own lines only and no total; the risk
decision and who holds the case (``assignee``) are for the desk only. A case names every refund
applied for it (``refunds``: each one its transitions named, in order).

One case read by id (``read_case_detail``) adds its timeline and its deadlines:

- ``timeline``: every transition (when, by whom, from and to which state) and, for the desk,
  its internal notes, assignments and debt records (``case_notes``), oldest first. The desk
  sees who acted (the actor's tag) and what each entry recorded (``detail``); the customer and
  the merchant see the role that acted and no detail (an entry's figures could tell another
  merchant's amounts, a review's words are the desk's);
- ``deadlines``: when each timer running on the case fires (policy ``[timers]``, the one
  reading of them the sweep uses: ``Timers.running``), and what it then does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select

from refundry.domain.process_policy import Timers
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.process import Case, load_case
from refundry.services.cases.record import case_from_row
from refundry.services.reads import decode_case_cursor, encode_cursor
from refundry.services.refunds.resource import STATUS as REFUND_STATUS
from refundry.services.refunds.reversal import ReversalView, reversal_of
from refundry.services.uow import UnitOfWork
from refundry.store.tables import case_events, case_notes, cases, order_lines, orders, refunds

__all__ = [
    "CaseDetail",
    "CaseFilter",
    "CaseInspection",
    "CaseLine",
    "CasePage",
    "CaseRefund",
    "CaseReview",
    "CaseRisk",
    "CaseShipment",
    "CaseView",
    "Deadline",
    "RiskReason",
    "TimelineEntry",
    "case_view",
    "like_json",
    "list_cases",
    "read_case",
    "read_case_detail",
]


@dataclass(frozen=True, slots=True)
class CaseLine:
    line_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class CaseReview:
    decision: str
    rule: str | None
    explain: str
    by: str  # "rules", or the actor tag of the person who decided


@dataclass(frozen=True, slots=True)
class RiskReason:
    rule: str
    explain: str


@dataclass(frozen=True, slots=True)
class CaseRisk:
    decision: str
    reasons: tuple[RiskReason, ...]
    not_applied: tuple[RiskReason, ...]  # rules on a feature the shop did not tell (account age)


@dataclass(frozen=True, slots=True)
class CaseShipment:
    service: str | None
    payer: str | None
    status: str | None
    carrier: str | None
    tracking_number: str | None
    cost: int | None
    label: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class CaseInspection:
    result: str
    accepted: tuple[CaseLine, ...]
    reason: str
    disposition: dict[str, str]  # accepted line -> resellable | damaged


@dataclass(frozen=True, slots=True)
class CaseRefund:
    id: str
    status: str  # pending | succeeded | failed (the refund resource's words)
    amount: int | None  # minor units; None where the case's ``amount`` is hidden


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str  # transition | note_added | assigned | debt_recovered | debt_written_off
    by: str  # the actor's tag for the desk; its role for anyone else
    action: str | None  # the transition: open, review, approve, escalate, ship …
    from_state: str | None
    to_state: str | None
    text: str | None  # a note's or a debt record's words (the desk only)
    detail: dict[str, Any] | None  # what the entry recorded (the desk only)


@dataclass(frozen=True, slots=True)
class Deadline:
    timer: str  # merchant_silent | ship_within | inspect_within | complete_after
    action: str  # what the timer then does to the case: approve, expire, refund, complete
    at: datetime  # when it fires (the worker's next sweep after it)


@dataclass(frozen=True, slots=True)
class CaseView:
    id: str
    order_id: str
    customer_id: str
    state: str
    kind: str
    reason: str
    return_method: str
    lines: tuple[CaseLine, ...]  # a merchant sees its own lines only
    accepted: tuple[CaseLine, ...] | None
    # The plan's total when the case was opened, minor units; None for a merchant on a case
    # that also asks for other merchants' lines (the total would tell their amounts).
    amount: int | None
    currency: str
    description: str
    evidence: tuple[str, ...]
    review: CaseReview | None
    risk: CaseRisk | None  # agents and admins only
    rma: str | None
    return_address: str | None
    shipment: CaseShipment | None
    tracking_number: str | None
    inspection: CaseInspection | None
    express: bool
    refund_id: str | None
    debt: int
    # what the inspection undid of the case's 极速退款 (None for a merchant on a case that also
    # asks for other merchants' lines, like the amount)
    reversal: ReversalView | None
    rating: int | None
    feedback: str | None
    created_at: datetime
    updated_at: datetime
    allowed_actions: tuple[str, ...]
    assignee: str | None  # the desk only: the actor tag of the agent holding the case
    refunds: tuple[CaseRefund, ...]  # every refund applied for the case, oldest first


@dataclass(frozen=True, slots=True)
class CaseDetail(CaseView):
    """One case read by id: the view, its timeline and its deadlines."""

    timeline: tuple[TimelineEntry, ...]
    deadlines: tuple[Deadline, ...]


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """The list's filters; None lets every value through."""

    state: str | None = None
    order_id: str | None = None
    kind: str | None = None
    reason: str | None = None
    customer_id: str | None = None  # the desk's customer history


@dataclass(frozen=True, slots=True)
class CasePage:
    items: tuple[CaseView, ...]
    next_cursor: str | None  # None on the last page


def _lines(raw: Any) -> tuple[CaseLine, ...]:
    return tuple(CaseLine(line_id=x["line_id"], quantity=x["quantity"]) for x in raw or [])


def _review(raw: str | None) -> CaseReview | None:
    if not raw:
        return None
    doc = json.loads(raw)
    return CaseReview(
        decision=doc["decision"],
        rule=doc.get("rule"),
        explain=doc.get("explain", ""),
        by=doc.get("by", ""),
    )


def _risk(raw: str | None) -> CaseRisk | None:
    if not raw:
        return None
    doc = json.loads(raw)
    return CaseRisk(
        decision=doc["decision"],
        reasons=tuple(RiskReason(rule=r["rule"], explain=r["explain"]) for r in doc["reasons"]),
        not_applied=tuple(
            RiskReason(rule=r["rule"], explain=r["explain"]) for r in doc.get("not_applied", ())
        ),
    )


def _shipment(raw: str | None) -> CaseShipment | None:
    if not raw:
        return None
    doc = json.loads(raw)  # the booking's fields and more; the view names these
    return CaseShipment(
        service=doc.get("service"),
        payer=doc.get("payer"),
        status=doc.get("status"),
        carrier=doc.get("carrier"),
        tracking_number=doc.get("tracking_number"),
        cost=doc.get("cost"),
        label=doc.get("label"),
    )


def case_view(
    conn: Connection,
    row: Case,
    actor: Actor,
    currency: str,
    refunds_of: Callable[[bool], tuple[CaseRefund, ...]] | None = None,
) -> CaseView:
    """The case as ``actor`` sees it (``row`` is one it may see: ``load_case``);
    ``refunds_of``: its refunds read already (``_refunds_of``, for a page of cases)."""
    inspection = json.loads(row.inspection) if row.inspection else None
    accepted = json.loads(row.accepted) if row.accepted else None
    lines = json.loads(row.lines)
    partial = access.sees_only_own_lines(row, actor)
    if partial:
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
            inspection["disposition"] = {
                k: v for k, v in inspection.get("disposition", {}).items() if k in mine
            }
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
        amount=None if partial else row.amount,
        currency=currency,
        description=row.description,
        evidence=tuple(json.loads(row.evidence)),
        review=_review(row.review),
        risk=_risk(row.risk) if access.sees_risk(actor) else None,
        rma=row.rma,
        return_address=row.return_address,
        shipment=_shipment(row.shipment),
        tracking_number=row.tracking_number,
        inspection=CaseInspection(
            result=inspection["result"],
            accepted=_lines(inspection.get("accepted")),
            reason=inspection.get("reason", ""),
            disposition=dict(inspection.get("disposition", {})),
        )
        if inspection
        else None,
        express=bool(row.express),
        refund_id=row.refund_id,
        debt=row.debt,
        reversal=reversal_of(conn, row.refund_id)
        if row.express and row.refund_id and row.inspection and not partial
        else None,
        rating=row.rating,
        feedback=row.feedback,
        created_at=row.created_at,
        updated_at=row.updated_at,
        allowed_actions=tuple(access.case_actions_for(row, actor)),
        assignee=row.assignee if access.sees_desk_entries(actor) else None,
        refunds=refunds_of(partial) if refunds_of else _refunds(conn, row, hide_amounts=partial),
    )


def _refunds(conn: Connection, row: Case, *, hide_amounts: bool) -> tuple[CaseRefund, ...]:
    """Every refund the case's transitions name (``refund_id`` in their data), oldest first."""
    return _refunds_of(conn, [row])[row.id](hide_amounts)


def _refunds_of(
    conn: Connection, rows: Sequence[Case]
) -> dict[str, Callable[[bool], tuple[CaseRefund, ...]]]:
    """``_refunds`` of each of ``rows``, read with two queries for them all (a page of the
    case list would otherwise ask twice per case): per case id, its refunds given whether the
    amounts are hidden."""
    named: dict[str, list[str]] = {row.id: [] for row in rows}
    if rows:
        mention = case_events.c.data.like('%"refund_id"%')  # a superset: the JSON is read below
        for case_id, data in conn.execute(
            select(case_events.c.case_id, case_events.c.data)
            .where(case_events.c.case_id.in_(list(named)), mention)
            .order_by(case_events.c.id)
        ):
            refund_id = json.loads(data).get("refund_id")
            if isinstance(refund_id, str) and refund_id not in named[case_id]:
                named[case_id].append(refund_id)
    for row in rows:
        if row.refund_id and row.refund_id not in named[row.id]:
            named[row.id].append(row.refund_id)
    wanted = sorted({refund_id for ids in named.values() for refund_id in ids})
    found: dict[str, Any] = {}
    if wanted:
        query = select(refunds.c.id, refunds.c.status, refunds.c.total)
        found = {r.id: r for r in conn.execute(query.where(refunds.c.id.in_(wanted)))}

    def of(ids: list[str]) -> Callable[[bool], tuple[CaseRefund, ...]]:
        def views(hide_amounts: bool) -> tuple[CaseRefund, ...]:
            return tuple(
                CaseRefund(
                    id=refund_id,
                    status=REFUND_STATUS.get(found[refund_id].status, found[refund_id].status),
                    amount=None if hide_amounts else int(found[refund_id].total),
                )
                for refund_id in ids
                if refund_id in found
            )

        return views

    return {case_id: of(ids) for case_id, ids in named.items()}


def _timeline(conn: Connection, row: Case, actor: Actor) -> tuple[TimelineEntry, ...]:
    desk = access.sees_desk_entries(actor)  # the desk: tags, words and figures
    entries = [
        TimelineEntry(
            at=e.at,
            kind="transition",
            by=e.actor if desk else e.actor.partition(":")[0],
            action=e.action,
            from_state=e.from_state,
            to_state=e.to_state,
            text=None,
            detail=json.loads(e.data) if desk else None,
        )
        for e in conn.execute(
            select(case_events).where(case_events.c.case_id == row.id).order_by(case_events.c.id)
        )
    ]
    if desk:
        entries += [
            TimelineEntry(
                at=n.at,
                kind=n.kind,
                by=n.actor,
                action=None,
                from_state=None,
                to_state=None,
                text=n.text,
                detail=json.loads(n.data),
            )
            for n in conn.execute(
                select(case_notes).where(case_notes.c.case_id == row.id).order_by(case_notes.c.id)
            )
        ]
    return tuple(sorted(entries, key=lambda e: e.at))  # stable: each kind keeps its order


def _deadlines(row: Case, timers: Timers) -> tuple[Deadline, ...]:
    return tuple(
        Deadline(timer=name, action=action, at=row.state_since + wait)
        for state, name, action, wait in timers.running()
        if state == row.state
    )


def read_case_detail(desk: CaseDesk, case_id: str, actor: Actor) -> CaseDetail:
    """The case as ``actor`` may see it, with its timeline and deadlines."""
    with UnitOfWork(desk.engine, readonly=True) as uow:
        row = load_case(uow.conn, case_id, actor)
        currency = uow.conn.execute(
            select(orders.c.currency).where(orders.c.id == row.order_id)
        ).scalar_one()
        view = case_view(uow.conn, row, actor, currency)
        return CaseDetail(
            **{f.name: getattr(view, f.name) for f in fields(CaseView)},
            timeline=_timeline(uow.conn, row, actor),
            deadlines=_deadlines(row, desk.process.timers),
        )


def read_case(engine: Engine, case_id: str, actor: Actor) -> CaseView:
    """The case as ``actor`` may see it; ``case.not_found`` when it may not."""
    with UnitOfWork(engine, readonly=True) as uow:
        row = load_case(uow.conn, case_id, actor)
        currency = uow.conn.execute(
            select(orders.c.currency).where(orders.c.id == row.order_id)
        ).scalar_one()
        return case_view(uow.conn, row, actor, currency)


def like_json(value: str) -> str:
    """A LIKE pattern matching ``value`` as an element of a stored JSON list."""
    quoted = json.dumps(value)
    escaped = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_cases(
    engine: Engine,
    actor: Actor,
    *,
    where: CaseFilter | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> CasePage:
    """Newest first (created_at, then id): a customer's own cases, a merchant's cases with its
    lines, every case for the desk. ``cursor`` is the ``next_cursor`` of the previous page."""
    where = where or CaseFilter()
    query = select(cases, orders.c.currency).join(orders, orders.c.id == cases.c.order_id)
    # The scope narrows what the store reads; may_see_case below stays the rule.
    scope = access.case_list_scope(actor)
    if scope == "none":
        return CasePage(items=(), next_cursor=None)
    if scope == "own":
        query = query.where(cases.c.customer_id == actor.id)
    elif scope == "own_lines":
        query = query.where(cases.c.merchant_ids.like(like_json(actor.id), escape="\\"))
    for column, value in (
        (cases.c.state, where.state),
        (cases.c.order_id, where.order_id),
        (cases.c.kind, where.kind),
        (cases.c.reason, where.reason),
        (cases.c.customer_id, where.customer_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if cursor is not None:
        at, last_id = decode_case_cursor(cursor)
        query = query.where(
            or_(cases.c.created_at < at, and_(cases.c.created_at == at, cases.c.id < last_id))
        )
    query = query.order_by(cases.c.created_at.desc(), cases.c.id.desc()).limit(limit + 1)
    with UnitOfWork(engine, readonly=True) as uow:
        rows: Sequence[Any] = list(uow.conn.execute(query))
        page = rows[:limit]
        shown = [(c, r.currency) for r in page if access.may_see_case(c := case_from_row(r), actor)]
        refunds_of = _refunds_of(uow.conn, [c for c, _ in shown])
        items = tuple(
            case_view(uow.conn, c, actor, currency, refunds_of[c.id]) for c, currency in shown
        )
    more = len(rows) > limit
    return CasePage(
        items=items,
        next_cursor=encode_cursor(page[-1].created_at.isoformat(), page[-1].id) if more else None,
    )
