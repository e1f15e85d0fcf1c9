"""What people do to a case after it is opened: decide, cancel, ship, receive, inspect, resolve,
rate. Each call is one transaction; who may do what is checked here, for every front end."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from refundry.domain.case import CaseState
from refundry.domain.errors import InvalidInput
from refundry.domain.photos import PhotoFile
from refundry.services.access import Actor, photo_kind, require_case_action
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.approval import approve_case
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.photos import record_photos
from refundry.services.cases.process import Case, current_case, load_case, move
from refundry.services.cases.refund import follow_refund, refund_case
from refundry.services.errors import Unprocessable
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.ledger import debit_wallet
from refundry.services.refunds.reversal import reverse_refund
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, order_lines, refunds

__all__ = [
    "DISPOSITIONS",
    "act_on_case",
    "approve",
    "cancel",
    "inspect",
    "rate",
    "receive",
    "reject",
    "resolve_manual_review",
    "ship",
]

# Where returned units go after inspection: back on sale, or out of stock as damaged.
DISPOSITIONS = ("resellable", "damaged")


def act_on_case(
    desk: CaseDesk,
    case_id: str,
    actor: Actor,
    now: datetime,
    body: Callable[[Connection, Case, AuditTrail], Case],
) -> Case:
    """Run ``body`` on the case (locked, seen by ``actor``) in one transaction with its audit
    entries; ``body`` checks what the actor may do and returns the case as it leaves it."""
    with UnitOfWork(desk.engine) as uow:
        row = load_case(uow.conn, case_id, actor, lock=True)
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=row.customer_id)
        row = body(uow.conn, row, trail)
        trail.flush(uow.conn)
        uow.commit()
    return row


def approve(
    desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, comment: str = ""
) -> Case:
    """An agent (any case) or the merchant (its own lines) approves a case under review, or an
    agent approves one held for manual review."""

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "approve")
        review = {
            "decision": "approve",
            "rule": "agent" if actor.role != "merchant" else "merchant",
            "explain": comment or "approved",
            "by": actor.tag,
        }
        return approve_case(conn, desk, row, actor=actor, at=now, trail=trail, review=review)

    return act_on_case(desk, case_id, actor, now, body)


def reject(desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, comment: str) -> Case:
    if not comment.strip():
        raise InvalidInput(
            "a rejection needs a comment the customer will read",
            code="case.comment_required",
            field="comment",
        )

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "reject")
        review = {"decision": "reject", "rule": actor.role, "explain": comment, "by": actor.tag}
        return move(
            conn,
            row,
            "reject",
            actor=actor,
            at=now,
            trail=trail,
            data=review,
            values={"review": json.dumps(review, ensure_ascii=False)},
            notify="case.rejected",
            params={"reason": comment},
        )

    return act_on_case(desk, case_id, actor, now, body)


def cancel(desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime) -> Case:
    """The customer withdraws the case before the return ships (the table says when)."""

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "cancel")
        if row.refund_id:
            raise Unprocessable(
                "money already went back for this case (极速退款)", code="case.already_refunded"
            )
        return move(conn, row, "cancel", actor=actor, at=now, trail=trail, notify="case.cancelled")

    return act_on_case(desk, case_id, actor, now, body)


def ship(
    desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, tracking_number: str
) -> Case:
    if not tracking_number.strip() or len(tracking_number) > 100:
        raise InvalidInput(
            "a tracking number of 1 to 100 characters",
            code="case.tracking_number_invalid",
            field="tracking_number",
        )

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "ship")
        return move(
            conn,
            row,
            "ship",
            actor=actor,
            at=now,
            trail=trail,
            data={"tracking_number": tracking_number},
            values={"tracking_number": tracking_number.strip()},
        )

    return act_on_case(desk, case_id, actor, now, body)


def receive(desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime) -> Case:
    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "receive")
        return move(
            conn, row, "receive", actor=actor, at=now, trail=trail, notify="case.return_received"
        )

    return act_on_case(desk, case_id, actor, now, body)


def inspect(
    desk: CaseDesk,
    case_id: str,
    *,
    actor: Actor,
    now: datetime,
    result: str,
    accepted: dict[str, int] | None = None,
    reason: str = "",
    disposition: dict[str, str] | None = None,
    photos: Sequence[PhotoFile] = (),
) -> Case:
    """Record the inspection: ``pass`` (every unit), ``partial`` (``accepted`` units per line),
    ``fail`` (``reason``). The refund follows the inspection; accepted units are restocked with
    their ``disposition`` per line: ``resellable`` (back on sale, the default) or ``damaged``
    (kept out of stock). ``photos``: the inspection's, stored already
    (services/cases/photos.py), held by the case in the same transaction."""
    if result not in ("pass", "partial", "fail"):
        raise InvalidInput(
            "result must be pass, partial or fail", code="case.inspection_invalid", field="result"
        )
    if result == "fail" and not reason.strip():
        raise InvalidInput(
            "a failed inspection needs a reason", code="case.inspection_invalid", field="reason"
        )

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "inspect")
        record_photos(
            conn,
            case_id=row.id,
            customer_id=row.customer_id,
            kind=photo_kind(actor),
            files=photos,
            actor=actor,
            now=now,
            trail=trail,
            limits=desk.photo_limits,
            order_id=row.order_id,
        )
        asked = {x["line_id"]: x["quantity"] for x in json.loads(row.lines)}
        kept = _accepted_units(result, asked, accepted)
        lines = [{"line_id": k, "quantity": q} for k, q in kept.items() if q]
        dispositions = _dispositions(lines, disposition)
        inspection = {
            "result": result,
            "accepted": lines,
            "reason": reason,
            "disposition": dispositions,
        }
        template = {
            "pass": "case.inspection_passed",
            "partial": "case.inspection_partial",
            "fail": "case.inspection_failed",
        }[result]
        row = move(
            conn,
            row,
            "inspect",
            actor=actor,
            at=now,
            trail=trail,
            data=inspection,
            values={
                "inspection": json.dumps(inspection, ensure_ascii=False),
                "accepted": json.dumps(lines),
            },
            notify=template,
            params={"reason": reason},
        )
        _restock(conn, row, lines, dispositions, now)
        if result == "fail":
            debt = _reverse_express(conn, desk, row, {}, trail=trail, at=now)
            return move(
                conn,
                row,
                "reject_goods",
                actor=actor,
                at=now,
                trail=trail,
                data={"reason": reason, "debt": debt},
                values={"debt": debt},
            )
        if row.express and row.refund_id:
            debt = _reverse_express(conn, desk, row, kept, trail=trail, at=now)
            return _settle_express(conn, row, debt, actor=actor, at=now, trail=trail)
        return refund_case(
            conn,
            row,
            action="refund",
            actor=actor,
            at=now,
            trail=trail,
            policy=desk.policy,
            lines=lines,
        )

    return act_on_case(desk, case_id, actor, now, body)


def _accepted_units(
    result: str, asked: dict[str, int], accepted: dict[str, int] | None
) -> dict[str, int]:
    """The units the inspection accepts, per line: every one (pass), none (fail), or some but
    not all, within the case's (partial)."""
    if result == "pass":
        return dict(asked)
    if result == "fail":
        return {}
    kept = dict(accepted or {})
    bad = [k for k, q in kept.items() if k not in asked or not 0 <= q <= asked[k]]
    if bad or not any(kept.values()) or kept == asked:
        raise InvalidInput(
            "accepted quantities must be within the case's units, some but not all",
            code="case.inspection_invalid",
            field="accepted",
        )
    return kept


def _dispositions(lines: list[dict[str, Any]], given: dict[str, str] | None) -> dict[str, str]:
    """Where each accepted line's units go: ``resellable`` unless the inspector says
    ``damaged``; a disposition for a line the inspection does not accept is refused."""
    given = dict(given or {})
    kept = {item["line_id"] for item in lines}
    if any(k not in kept or v not in DISPOSITIONS for k, v in given.items()):
        raise InvalidInput(
            "disposition names accepted lines only, each resellable or damaged",
            code="case.inspection_invalid",
            field="disposition",
        )
    return {item["line_id"]: given.get(item["line_id"], "resellable") for item in lines}


def _settle_express(
    conn: Connection,
    row: Case,
    debt: int,
    *,
    actor: Actor,
    at: datetime,
    trail: AuditTrail,
) -> Case:
    """极速退款 paid at approval: the case follows that refund's money, and what it paid for
    units the inspection refused (reversed by ``_reverse_express``) is the case's debt."""
    refund_id = row.refund_id
    if refund_id is None:  # the caller settles only a case whose refund was paid at approval
        raise RuntimeError(f"case {row.id}: an express settlement without its refund")
    row = move(
        conn,
        row,
        "settle",
        actor=actor,
        at=at,
        trail=trail,
        data={"refund_id": refund_id, "debt": debt},
        values={"debt": debt},
    )
    money = conn.execute(select(refunds.c.status).where(refunds.c.id == refund_id)).scalar_one()
    follow_refund(conn, refund_id=refund_id, status=money, at=at, trail=trail)
    return current_case(conn, row.id)


def _restock(
    conn: Connection,
    row: Case,
    lines: list[dict[str, Any]],
    dispositions: dict[str, str],
    at: datetime,
) -> None:
    for item in lines:
        sku = conn.execute(
            select(order_lines.c.sku).where(
                order_lines.c.order_id == row.order_id, order_lines.c.line_id == item["line_id"]
            )
        ).scalar_one()
        enqueue(
            conn,
            topic="event",
            key=f"event:restock:{row.id}:{item['line_id']}",
            at=at,
            payload={
                "type": "restock",
                "case_id": row.id,
                "order_id": row.order_id,
                "customer_id": row.customer_id,
                "line_id": item["line_id"],
                "sku": sku,
                "quantity": item["quantity"],
                "disposition": dispositions[item["line_id"]],
            },
        )


def _reverse_express(
    conn: Connection,
    desk: CaseDesk,
    row: Case,
    accepted: dict[str, int],
    *,
    trail: AuditTrail,
    at: datetime,
) -> int:
    """极速退款 paid before the goods came back: the units the inspection refused stop counting
    as refunded, and what was paid for them is owed by the customer (services/refunds/reversal,
    domain/express.py); an agent recovers it. Returns the debt (0 without an express refund)."""
    if not (row.express and row.refund_id):
        return 0
    return reverse_refund(
        conn,
        refund_id=row.refund_id,
        accepted=accepted,
        policy=desk.policy,
        trail=trail,
        at=at,
        case_id=row.id,
    ).debt


def resolve_manual_review(
    desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, resolution: str, comment: str
) -> Case:
    """An agent lets a held plan apply: ``waiver`` (the excess is forgiven) or ``wallet_debit``
    (the excess is taken from the customer's wallet). Audited either way."""
    if resolution not in ("waiver", "wallet_debit"):
        raise InvalidInput(
            "resolution must be waiver or wallet_debit",
            code="case.resolution_invalid",
            field="resolution",
        )

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "resolve")
        if row.state != CaseState.NEEDS_MANUAL_REVIEW:
            from refundry.domain.case import IllegalTransition

            raise IllegalTransition(CaseState(row.state), "resolve")
        events = json.loads(_last_escalation(conn, row.id))
        excess = int(events.get("excess", 0))
        if resolution == "wallet_debit" and excess:
            debit_wallet(
                conn,
                journal_id=f"case:{row.id}:wallet_debit",
                customer_id=row.customer_id,
                amount=excess,
                at=now,
                order_id=row.order_id,
                memo="manual review: excess deductions debited from the wallet",
                what="the excess",
                otherwise="waive it, or wait until the wallet holds it",
            )
        trail.record(
            "case.manual_review_resolved",
            order_id=row.order_id,
            case_id=row.id,
            resolution=resolution,
            excess=excess,
            comment=comment,
        )
        return refund_case(
            conn,
            row,
            action="resolve",
            actor=actor,
            at=now,
            trail=trail,
            policy=desk.policy,
            concession=(resolution, excess),
        )

    return act_on_case(desk, case_id, actor, now, body)


def _last_escalation(conn: Connection, case_id: str) -> str:
    from refundry.store.tables import case_events

    found = conn.execute(
        select(case_events.c.data)
        .where(case_events.c.case_id == case_id, case_events.c.action == "escalate")
        .order_by(case_events.c.id.desc())
        .limit(1)
    ).scalar()
    return str(found or "{}")


def rate(
    desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, rating: int, feedback: str = ""
) -> Case:
    """After completion the customer rates the experience (1-5) and may leave feedback."""
    if type(rating) is not int or not 1 <= rating <= 5:
        raise InvalidInput(
            "rating must be an integer from 1 to 5", code="case.rating_invalid", field="rating"
        )
    with UnitOfWork(desk.engine) as uow:
        row = load_case(uow.conn, case_id, actor, lock=True)
        require_case_action(row, actor, "rate")
        if row.state != CaseState.COMPLETED:
            raise Unprocessable("only a completed case can be rated", code="case.not_completed")
        if row.rating is not None:
            raise Unprocessable("this case was rated already", code="case.already_rated")
        uow.conn.execute(
            update(cases)
            .where(cases.c.id == case_id)
            .values(rating=rating, feedback=feedback[:2000], updated_at=now)
        )
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=row.customer_id)
        trail.record("case.rated", order_id=row.order_id, case_id=case_id, rating=rating)
        trail.flush(uow.conn)
        uow.commit()
        return current_case(uow.conn, case_id)
