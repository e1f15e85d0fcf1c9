"""Refunding a case: the plan of the units it (still) asks for, applied in the case's transaction,
and the case following its refund's money afterwards."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from refundry.domain.case import CaseState
from refundry.domain.plan_doc import DeductionDoc, PlanDoc, plan_hash
from refundry.domain.policy import Policy
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.process import Actor, Case, move, release_units
from refundry.services.cases.record import read_case
from refundry.services.errors import Conflict
from refundry.services.refunds.apply import compute_plan, record_refund
from refundry.services.refunds.state import load_plan_inputs
from refundry.store.tables import cases

__all__ = ["case_request", "conceded", "follow_refund", "refund_case"]

SYSTEM = Actor("system", "refunds")


def case_request(row: Case, lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The refund request a case stands for (its accepted units after a partial inspection)."""
    asked = lines if lines is not None else json.loads(row.accepted or row.lines)
    return {
        "order_id": row.order_id,
        "reason": row.reason,
        "kind": row.kind,
        "return_method": row.return_method,
        "lines": [
            {"line_id": x["line_id"], "quantity": x["quantity"]} for x in asked if x["quantity"] > 0
        ],
    }


def refund_case(
    conn: Connection,
    row: Case,
    *,
    action: str,
    actor: Actor,
    at: datetime,
    trail: AuditTrail,
    policy: Policy,
    lines: list[dict[str, Any]] | None = None,
    concession: tuple[str, int] | None = None,
) -> Case:
    """Apply the case's plan now (``action`` is the transition into refunding: refund, resolve…).

    A plan that cannot apply alone moves the case to needs_manual_review instead — unless an
    agent's ``concession`` (``("waiver" | "wallet_debit", excess)``) covers the excess: the step
    then moves no money and records the concession as a negative deduction, so later steps do
    not claw the excess back again."""
    inputs = load_plan_inputs(conn, row.order_id, policy=policy, lock=True, now=at)
    plan = compute_plan(inputs, case_request(row, lines), policy, at)
    if plan["status"] != "ready" and concession is not None:
        plan = conceded(plan, *concession)
    if plan["status"] != "ready":
        return move(
            conn,
            row,
            "escalate",
            actor=actor,
            at=at,
            trail=trail,
            data={
                "why": "plan.deductions_exceed_amount",
                "excess": plan["manual_review"]["excess"] if plan["manual_review"] else 0,
                "plan_hash": plan["plan_hash"],
            },
            notify="case.needs_review",
        )
    release_units(conn, row)  # the refund's units now count as refunded instead
    refund_id, status = record_refund(conn, inputs=inputs, plan=plan, actor=actor.tag, at=at)
    row = move(
        conn,
        row,
        action,
        actor=actor,
        at=at,
        trail=trail,
        data={"refund_id": refund_id, "total": plan["amount"]["total"]},
        values={"refund_id": refund_id, "units_held": False},
    )
    if status == "refunded":
        row = move(
            conn, row, "confirm", actor=SYSTEM, at=at, trail=trail, data={"refund_id": refund_id}
        )
    return row


def conceded(plan: PlanDoc, resolution: str, excess: int) -> PlanDoc:
    """The held plan, made applicable by an agent's waiver or wallet debit of its excess."""
    held = plan["manual_review"]
    if held is None or excess != held["excess"]:
        raise Conflict("the plan changed since it was held; review it again", code="plan.stale")
    concession: DeductionDoc = {
        "kind": resolution,
        "ref": "agent",
        "amount": -excess,
        "reason": "the agent "
        + ("waived" if resolution == "waiver" else "debited the wallet for")
        + " the deductions the step "
        "could not take",
        "rule": "agent.manual_review",
    }
    out: PlanDoc = {
        **plan,
        "status": "ready",
        "manual_review": {**held, "resolution": resolution},
        "deductions": [*plan["deductions"], concession],
    }
    out["plan_hash"] = plan_hash(out)  # the hash leaves plan_hash itself out
    return out


def follow_refund(
    conn: Connection, *, refund_id: str, status: str, at: datetime, trail: AuditTrail
) -> None:
    """Move the case of a refund whose money moved (called where the refund's status changes)."""
    row = read_case(conn, cases.c.refund_id == refund_id)
    if row is None:
        return
    state = CaseState(row.state)
    action = None
    if state == CaseState.REFUNDING and status == "refunded":
        action = "confirm"
    elif state == CaseState.REFUNDING and status == "refund_failed":
        action = "fail"
    elif state == CaseState.REFUND_FAILED and status == "refunding":
        action = "retry"
    elif state == CaseState.REFUND_FAILED and status == "refunded":
        action = "refund_to_wallet"
    if action is not None:
        move(
            conn,
            row,
            action,
            actor=SYSTEM,
            at=at,
            trail=trail,
            data={"refund_id": refund_id, "refund_status": status},
        )
