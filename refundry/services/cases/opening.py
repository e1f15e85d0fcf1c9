"""Opening a case and its automatic review, in one transaction.

The customer asks for units of one of its orders. The case service itself enforces what every
front end must: refund rights not suspended, units not refunded or held by another open case,
a one-time code when the plan moves more than the policy amount or risk asks. Then the risk
rules and the review rules decide — approve, reject or the agent queue — and the case records
which rule decided and why. An approved refund_only case is refunded at once; an approved
return gets its RMA (services/case_returns.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from refundry.domain.errors import InvalidInput
from refundry.domain.json_io import parse_request
from refundry.domain.photos import PhotoFile, PhotoLimits
from refundry.domain.plan_doc import PlanDoc
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ProcessPolicy
from refundry.domain.request import RefundRequest
from refundry.domain.review import CaseFacts, ReviewDecision, auto_review
from refundry.domain.risk import RiskDecision
from refundry.services.access import Actor, check_case_opening
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.approval import approve_case
from refundry.services.cases.photos import record_photos
from refundry.services.cases.process import (
    Case,
    check_units_free,
    current_case,
    hold_units,
    move,
    new_case_id,
    opened_event,
)
from refundry.services.claims import note_outcome
from refundry.services.customers.identity import WrongCode, count_wrong_code, spend_code
from refundry.services.customers.risk import (
    active_restrictions,
    assess_customer,
    record_restriction,
)
from refundry.services.errors import Forbidden, RateLimited, Unprocessable
from refundry.services.passkeys import RelyingParty, spend_assertion, submission_binding
from refundry.services.refunds.apply import compute_plan
from refundry.services.refunds.state import load_plan_inputs
from refundry.services.uow import UnitOfWork
from refundry.store.tables import case_events, cases, customers, order_lines, orders
from refundry.store.tables import photos as photo_rows

__all__ = ["CaseDesk", "CaseRate", "OpenedCase", "check_case_rate", "open_case"]


PHOTO_LIMITS = PhotoLimits()  # the settings' defaults: 8 MiB, 6 of each kind per case
DEV_RELYING_PARTY = RelyingParty("localhost", "refundry", ("http://localhost:8000",))


@dataclass(frozen=True, slots=True)
class CaseDesk:
    """What the case services need besides the database: the policies, the secret that
    keys one-time codes (services/customers/identity.py) and signs staged photos, the
    passkeys' relying party (services/passkeys.py) and the photos' limits."""

    engine: Engine
    policy: Policy
    process: ProcessPolicy
    identity_secret: bytes = b"refundry-development-secret"
    relying_party: RelyingParty = DEV_RELYING_PARTY
    photo_limits: PhotoLimits = PHOTO_LIMITS  # the cases' photos (services/cases/photos.py)


@dataclass(frozen=True, slots=True)
class CaseRate:
    """At most ``limit`` cases opened by a customer in any ``window``."""

    limit: int
    window: timedelta


def check_case_rate(conn: Connection, customer_id: str, now: datetime, rate: CaseRate) -> None:
    """Raise ``rate.limited`` if the customer opened ``rate.limit`` cases in the window, with
    the seconds until the oldest of them leaves it. Race-free only inside the transaction that
    opens the case, after ``lock_customer`` (see open_case)."""
    recent = list(
        conn.execute(
            select(cases.c.created_at)
            .where(cases.c.customer_id == customer_id, cases.c.created_at > now - rate.window)
            .order_by(cases.c.created_at)
        ).scalars()
    )
    if len(recent) >= rate.limit:
        frees_at = recent[len(recent) - rate.limit] + rate.window
        wait = max(1, math.ceil((frees_at - now).total_seconds()))
        raise RateLimited(
            f"at most {rate.limit} cases per {rate.window.total_seconds():.0f} seconds; "
            f"try again in {wait} seconds",
            retry_after=wait,
        )


def lock_customer(conn: Connection, customer_id: str) -> None:
    """PostgreSQL: the customer's row lock, so that two cases of one customer are opened one
    after the other (SQLite: the write transaction already holds the database). Taken after
    the order's lock, in the order the apply path takes them (order, then the customer's rows)."""
    if conn.dialect.name != "sqlite":
        conn.execute(select(customers.c.id).where(customers.c.id == customer_id).with_for_update())


@dataclass(frozen=True, slots=True)
class OpenedCase:
    case_id: str
    state: str
    review: dict[str, Any]
    plan: PlanDoc


def open_case(
    desk: CaseDesk,
    *,
    actor: Actor,
    request: dict[str, Any],
    now: datetime,
    description: str = "",
    evidence: list[str] | None = None,
    otp: tuple[str, str] | None = None,
    passkey: str | dict[str, Any] | None = None,
    rate: CaseRate | None = None,
    photos: Sequence[PhotoFile] = (),
) -> OpenedCase:
    """Open a case for ``request`` (docs/plan-json.md request document) and review it.

    When the plan moves more than ``identity.otp_above_amount`` or the risk rules ask for a
    review, a customer must give ``otp`` = (code id, code) from ``request_code(purpose=
    "case.submit")``; without it ``identity.code_required`` is raised and nothing is written;
    a wrong, expired or used code raises its own error (services/customers/identity.py). The
    code is spent in the transaction that opens the case, after every other check: a
    submission refused for another reason (units held, rate, suspended rights) leaves it usable.
    Instead of the code, ``passkey`` may be a passkey assertion for a challenge issued for this
    very submission (services/passkeys.py ``assertion_options``), checked and spent the same way.

    ``rate``: a customer who opened ``rate.limit`` cases in the window gets ``rate.limited``,
    checked in the transaction that opens the case under the customer's lock, so concurrent
    requests cannot all pass at ``limit - 1``.

    ``photos``: the customer's photos, stored already (services/cases/photos.py
    ``stage_photos``), held by the case from its opening; the automatic review counts them
    as evidence."""
    req = parse_request(request)
    if req.kind == "refund_only" and req.return_method not in ("none", "self_ship"):
        raise InvalidInput(
            "a refund_only case has no return",
            code="request.invalid",
            field="request.return_method",
        )
    evidence = list(evidence or [])
    try:
        return _open(
            desk,
            actor=actor,
            req=req,
            request=request,
            now=now,
            otp=otp,
            passkey=passkey,
            rate=rate,
            description=description,
            evidence=evidence,
            photos=photos,
        )
    except WrongCode as wrong:
        # The case was not opened (its transaction rolled back); the wrong code still counts.
        raise count_wrong_code(
            desk.engine,
            customer_id=actor.id,
            code_id=str(wrong.args[0]),
            now=now,
            policy=desk.process.identity,
        ) from None


def _open(
    desk: CaseDesk,
    *,
    actor: Actor,
    req: RefundRequest,
    request: dict[str, Any],
    now: datetime,
    otp: tuple[str, str] | None,
    passkey: str | dict[str, Any] | None,
    rate: CaseRate | None,
    description: str,
    evidence: list[str],
    photos: Sequence[PhotoFile],
) -> OpenedCase:
    with UnitOfWork(desk.engine) as uow:
        conn = uow.conn
        customer_id, restrictions = _opener(conn, actor, req.order_id, now)
        inputs = load_plan_inputs(conn, req.order_id, policy=desk.policy, lock=True, now=now)
        if rate is not None and actor.role == "customer":
            lock_customer(conn, customer_id)
            check_case_rate(conn, customer_id, now, rate)
        lines = [{"line_id": u.line_id, "quantity": u.quantity} for u in req.lines]
        check_units_free(conn, req.order_id, lines)
        plan = compute_plan(inputs, request, desk.policy, now)
        risk = assess_customer(conn, customer_id, now=now, policy=desk.process)
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=customer_id)
        verified = False
        if actor.role == "customer" and _code_asked(desk, plan, risk):
            if passkey is not None:
                spend_assertion(
                    conn,
                    desk.relying_party,
                    assertion=passkey,
                    purpose="case.submit",
                    owner=actor.tag,
                    bound_to=submission_binding(request),
                    now=now,
                    trail=trail,
                )
            else:
                _spend_code(conn, desk, customer_id=actor.id, otp=otp, now=now, trail=trail)
            verified = True
        hold_units(conn, req.order_id, lines, customer_id=customer_id)
        case_id, risk_doc = _record_opening(
            conn,
            actor=actor,
            req=req,
            customer_id=customer_id,
            lines=lines,
            plan=plan,
            risk=risk,
            description=description,
            evidence=evidence,
            verified=verified,
            now=now,
            trail=trail,
        )
        record_photos(
            conn,
            case_id=case_id,
            customer_id=customer_id,
            kind="customer",
            files=photos,
            actor=actor,
            now=now,
            trail=trail,
            limits=desk.photo_limits,
            order_id=req.order_id,
        )
        row = current_case(conn, case_id)
        row = move(
            conn,
            row,
            "review",
            actor=actor,
            at=now,
            trail=trail,
            notify="case.received",
            params={"amount": plan["amount"]["total"], "currency": plan["currency"]},
        )
        row, review_doc = _system_review(
            conn,
            desk,
            row,
            plan=plan,
            risk=(risk, risk_doc),
            restrictions=restrictions,
            now=now,
            trail=trail,
        )
        trail.flush(conn)
        note_outcome(case_id)  # a lost answer is rebuilt from it (services/claims.py)
        uow.commit()
    return OpenedCase(case_id, row.state, review_doc, plan)


SYSTEM_REVIEW = Actor("system", "review")  # the automatic review rules
SYSTEM_RISK = Actor("system", "risk")  # the risk rules


def _opener(conn: Connection, actor: Actor, order_id: str, now: datetime) -> tuple[str, set[str]]:
    """Who the case is for (the order's customer, if ``actor`` may open a case on it) and the
    restrictions on that customer now; suspended refund rights refuse the case."""
    owner = conn.execute(
        select(orders.c.customer_id, orders.c.status).where(orders.c.id == order_id)
    ).first()
    customer_id = check_case_opening(
        actor, order_id=order_id, customer_id=owner.customer_id if owner else None
    )
    restrictions = active_restrictions(conn, customer_id, now=now)
    if "suspend" in restrictions:
        raise Forbidden(
            "refund rights are suspended; an agent can lift the suspension",
            code="case.refund_rights_suspended",
        )
    return customer_id, restrictions


def _code_asked(desk: CaseDesk, plan: PlanDoc, risk: RiskDecision) -> bool:
    """SPEC §5: a case above the policy's amount, or one the risk rules ask to review, needs
    the one-time code sent to the customer's phone."""
    return plan["amount"]["total"] > desk.process.identity.otp_above_amount or asks_review(risk)


def _spend_code(
    conn: Connection,
    desk: CaseDesk,
    *,
    customer_id: str,
    otp: tuple[str, str] | None,
    now: datetime,
    trail: AuditTrail,
) -> None:
    if otp is None:
        raise Unprocessable(
            "this request needs the one-time code sent to your phone",
            code="identity.code_required",
        )
    spend_code(
        conn,
        customer_id=customer_id,
        purpose="case.submit",
        code_id=otp[0],
        code=otp[1],
        now=now,
        secret=desk.identity_secret,
        trail=trail,
    )


def _system_review(
    conn: Connection,
    desk: CaseDesk,
    row: Case,
    *,
    plan: PlanDoc,
    risk: tuple[RiskDecision, dict[str, Any]],
    restrictions: set[str],
    now: datetime,
    trail: AuditTrail,
) -> tuple[Case, dict[str, Any]]:
    """What the risk rules and the automatic review decide about the new case (SPEC §4
    automation, §5 risk): recorded as the system's, not the customer's."""
    decision_of_risk, risk_doc = risk
    if decision_of_risk.decision in ("restrict_high_value", "suspend"):
        with trail.acting(SYSTEM_RISK.tag):
            record_restriction(
                conn, row.customer_id, decision=decision_of_risk, now=now, trail=trail
            )
    decision = _decide(conn, desk, row, plan, decision_of_risk.decision, restrictions, now)
    with trail.acting(SYSTEM_REVIEW.tag):
        return _apply_review(
            conn,
            desk,
            row,
            decision=decision,
            risk=decision_of_risk,
            risk_doc=risk_doc,
            now=now,
            trail=trail,
        )


def _record_opening(
    conn: Connection,
    *,
    actor: Actor,
    req: RefundRequest,
    customer_id: str,
    lines: list[dict[str, Any]],
    plan: PlanDoc,
    risk: RiskDecision,
    description: str,
    evidence: list[str],
    verified: bool,
    now: datetime,
    trail: AuditTrail,
) -> tuple[str, dict[str, Any]]:
    """The case row, its first timeline event and its audit entry; returns the case id and
    the risk decision as stored on the case."""
    merchants = sorted(
        {
            m
            for (m,) in conn.execute(
                select(order_lines.c.merchant_id).where(
                    order_lines.c.order_id == req.order_id,
                    order_lines.c.line_id.in_([x["line_id"] for x in lines]),
                )
            )
        }
    )
    case_id = new_case_id()
    # ``decision`` first: the agents' queue filters by the stored text's opening
    # (services/cases/queue.py, ``_risk_is``).
    risk_doc = {
        "decision": risk.decision,
        "reasons": [{"rule": r, "explain": e} for r, e in risk.reasons],
        "not_applied": [{"rule": n.rule, "explain": n.explanation} for n in risk.not_applied],
    }
    conn.execute(
        insert(cases).values(
            id=case_id,
            order_id=req.order_id,
            customer_id=customer_id,
            kind=req.kind,
            reason=req.reason,
            return_method=req.return_method,
            state="requested",
            state_since=now,
            lines=json.dumps(lines),
            merchant_ids=json.dumps(merchants),
            description=description,
            evidence=json.dumps(evidence),
            amount=plan["amount"]["total"],
            risk=json.dumps(risk_doc, ensure_ascii=False),
            express=False,
            debt=0,
            units_held=True,
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    conn.execute(
        insert(case_events).values(
            case_id=case_id,
            customer_id=customer_id,
            at=now,
            actor=actor.tag,
            action="open",
            from_state=None,
            to_state="requested",
            data=json.dumps({"plan_hash": plan["plan_hash"], "amount": plan["amount"]["total"]}),
        )
    )
    opened_event(
        conn, case_id=case_id, order_id=req.order_id, customer_id=customer_id, actor=actor, at=now
    )
    trail.record(
        "case.opened",
        order_id=req.order_id,
        case_id=case_id,
        lines=lines,
        reason=req.reason,
        kind=req.kind,
        amount=plan["amount"]["total"],
        identity_verified=verified,
        risk=risk_doc,
    )
    return case_id, risk_doc


def _apply_review(
    conn: Connection,
    desk: CaseDesk,
    row: Case,
    *,
    decision: ReviewDecision,
    risk: RiskDecision,
    risk_doc: dict[str, Any],
    now: datetime,
    trail: AuditTrail,
) -> tuple[Case, dict[str, Any]]:
    """What the automatic review decided, done by the system: approve, reject, hand to an
    agent for risk, or leave the case under review in the agent queue."""
    review_doc = {
        "decision": decision.decision,
        "rule": decision.rule,
        "explain": decision.explain,
        "by": "rules",
    }
    system = SYSTEM_REVIEW
    review_text = json.dumps(review_doc, ensure_ascii=False)
    if decision.decision == "approve":
        row = approve_case(conn, desk, row, actor=system, at=now, trail=trail, review=review_doc)
    elif decision.decision == "reject":
        row = move(
            conn,
            row,
            "reject",
            actor=system,
            at=now,
            trail=trail,
            values={"review": review_text},
            data=review_doc,
            notify="case.rejected",
            params={"reason": decision.explain},
        )
    elif asks_review(risk):
        row = move(
            conn,
            row,
            "escalate",
            actor=system,
            at=now,
            trail=trail,
            values={"review": review_text},
            data={**review_doc, "risk": risk_doc},
            notify="case.needs_review",
        )
    else:  # no rule decided: the case stays under review, in the agent queue
        conn.execute(update(cases).where(cases.c.id == row.id).values(review=review_text))
    return row, review_doc


def asks_review(risk: RiskDecision) -> bool:
    """A matched manual-review rule asks for a code and an agent, whatever else matched (a
    restriction decided alongside it must not let the case skip the review)."""
    return risk.decision == "manual_review" or any(
        m.decision == "manual_review" for m in risk.matches
    )


def _decide(
    conn: Any,
    desk: CaseDesk,
    row: Any,
    plan: PlanDoc,
    risk_decision: str,
    restrictions: set[str],
    now: datetime,
) -> ReviewDecision:
    if risk_decision == "suspend":
        return ReviewDecision("reject", "risk.suspend", "refund rights suspended by risk rules")
    delivered = _delivered_at(conn, row.order_id, now)
    days = (now - delivered).days if delivered else None
    facts = CaseFacts(
        reason=row.reason,
        kind=row.kind,
        amount=plan["amount"]["total"],
        evidence=len(json.loads(row.evidence)) + _photo_count(conn, row.id),
        good_standing=risk_decision == "approve" and not restrictions,
        days_since_delivery=days,
    )
    return auto_review(facts, desk.process.review_rules)


def _photo_count(conn: Any, case_id: str) -> int:
    """The photos the case holds (the customer's, sent with the request)."""
    return int(
        conn.execute(select(func.count()).where(photo_rows.c.case_id == case_id)).scalar_one()
    )


def _delivered_at(conn: Any, order_id: str, now: datetime) -> datetime | None:
    """When the order reached the customer, by its current status (the shop's updates:
    services/orders/fulfilment.py): its ``delivered_at``, or its paid time when the shop never
    said when. An order not delivered yet (paid, shipped) is at ``now``: a window counted from
    delivery has not started (within 30 days of delivery holds; more than 7 days does not)."""
    row = conn.execute(
        select(orders.c.status, orders.c.delivered_at, orders.c.paid_at).where(
            orders.c.id == order_id
        )
    ).one()
    if row.status not in ("delivered", "completed"):
        return now
    when: datetime | None = row.delivered_at or row.paid_at
    return when
