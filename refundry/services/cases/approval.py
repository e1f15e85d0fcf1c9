"""What approval does: refund a refund_only case at once; give a return its RMA, address and
label or pickup (booked through the logistics adapter, from the outbox); and for a trusted
customer, 极速退款 — the money before the goods come back."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, update

from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.process import Actor, Case, current_case, move, release_units
from refundry.services.cases.refund import case_request, refund_case
from refundry.services.customers.risk import active_restrictions, risk_features
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.apply import compute_plan, record_refund
from refundry.services.refunds.state import load_plan_inputs
from refundry.store.tables import cases

if TYPE_CHECKING:
    from refundry.services.cases.opening import CaseDesk

__all__ = ["approve_case", "express_eligible"]

LOGISTICS_TOPIC = "logistics.book"


def approve_case(
    conn: Connection,
    desk: CaseDesk,
    row: Case,
    *,
    actor: Actor,
    at: datetime,
    trail: AuditTrail,
    review: dict[str, Any],
) -> Case:
    row = move(
        conn,
        row,
        "approve",
        actor=actor,
        at=at,
        trail=trail,
        data=review,
        values={"review": json.dumps(review, ensure_ascii=False)},
        notify="case.approved",
    )
    if row.kind == "refund_only":
        return refund_case(
            conn, row, action="refund", actor=actor, at=at, trail=trail, policy=desk.policy
        )
    express = express_eligible(conn, desk, row, at)
    row = issue_return(conn, desk, row, actor=actor, at=at, trail=trail, express=express)
    if express:
        row = _express_refund(conn, desk, row, actor=actor, at=at, trail=trail)
    return row


def express_eligible(conn: Connection, desk: CaseDesk, row: Case, at: datetime) -> bool:
    """Trusted: old enough account, few refunds lately, no restriction, small enough amount."""
    rules = desk.process.express
    if not rules.enabled or row.amount > rules.max_amount:
        return False
    if active_restrictions(conn, row.customer_id, now=at):
        return False
    features = risk_features(conn, row.customer_id, now=at)
    return (
        features.account_age_at_least >= rules.min_account_age_days
        and features.refund_count_90d <= rules.max_refunds_90d
    )


def issue_return(
    conn: Connection,
    desk: CaseDesk,
    row: Case,
    *,
    actor: Actor,
    at: datetime,
    trail: AuditTrail,
    express: bool,
) -> Case:
    merchant = json.loads(row.merchant_ids)[0] if json.loads(row.merchant_ids) else ""
    address = desk.process.address_for(merchant)
    rma = "RMA-" + row.id.removeprefix("cs_")[:12].upper()
    payer = "merchant" if desk.policy.is_merchant_fault(row.reason) else "customer"
    shipment = {
        "service": row.return_method,
        "payer": payer,
        "status": "booking"
        if row.return_method in ("prepaid_label", "pickup")
        else "customer_ships",
    }
    if row.return_method in ("prepaid_label", "pickup"):
        enqueue(
            conn,
            topic=LOGISTICS_TOPIC,
            key=f"logistics:{row.id}",
            at=at,
            customer_id=row.customer_id,
            payload={
                "case_id": row.id,
                "rma": rma,
                "service": row.return_method,
                "payer": payer,
                "from_address": f"customer {row.customer_id}",
                "to_address": address,
            },
        )
    return move(
        conn,
        row,
        "issue_return",
        actor=actor,
        at=at,
        trail=trail,
        data={"rma": rma, "address": address, **shipment, "express": express},
        values={
            "rma": rma,
            "return_address": address,
            "express": express,
            "shipment": json.dumps(shipment),
        },
        notify="case.return_label_issued" if row.return_method == "self_ship" else None,
        params={"rma": rma, "address": address},
    )


def _express_refund(
    conn: Connection,
    desk: CaseDesk,
    row: Case,
    *,
    actor: Actor,
    at: datetime,
    trail: AuditTrail,
) -> Case:
    """Apply the refund now while the case waits for the goods; the case keeps its state."""
    inputs = load_plan_inputs(conn, row.order_id, policy=desk.policy, lock=True, now=at)
    plan = compute_plan(inputs, case_request(row), desk.policy, at)
    if plan["status"] != "ready":
        return row  # no express refund for a plan an agent must look at
    release_units(conn, row)
    refund_id, _ = record_refund(conn, inputs=inputs, plan=plan, actor=actor.tag, at=at)
    conn.execute(update(cases).where(cases.c.id == row.id).values(refund_id=refund_id))
    trail.record(
        "case.express_refund",
        order_id=row.order_id,
        case_id=row.id,
        refund_id=refund_id,
        total=plan["amount"]["total"],
    )
    return current_case(conn, row.id)
