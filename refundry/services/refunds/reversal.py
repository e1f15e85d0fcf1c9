"""Reversing what a 极速退款 paid for units its inspection refused, in the inspection's transaction.

``reverse_refund`` takes the order's lock (as apply does), plans the refund's step again with
the accepted units only, from the step's inputs with the step undone (state.inputs_before_step),
and writes the difference domain/express.py's ``plan_reversal`` gives: the refused units
refundable again, coupons and entitlements used by the order again, points, growth, tier,
campaign spend, quotas and rewards as the accepted-only step leaves them; cash stays with its
tenders and the rest is the debt. One row of ``refund_reversals`` per refund (its primary key:
a second reversal of the same refund cannot commit), an audit entry, and the ``refund.reversed``
event in the outbox, all in the caller's transaction. Later plans of the order read the step as
the reversal's history document (state.py).

Refunds of the same order applied after the express step are part of the history the reversal
leaves in place: the step is planned again against the steps before it, and the later steps stay
as they were applied (their money moved); the next plan of the order settles any difference
through its ``carry`` (docs/case-process.md, "极速退款").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, select, update

from refundry.domain.express import (
    Reversal,
    accepted_request,
    history_document,
    plan_reversal,
    released_items,
)
from refundry.domain.json_text import compact
from refundry.domain.plan_doc import PlanDoc, load_plan
from refundry.domain.policy import Policy
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict
from refundry.services.faults import fault_point
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.apply import compute_plan
from refundry.services.refunds.ledger import post
from refundry.services.refunds.state import PlanInputs, inputs_before_step, load_plan_inputs
from refundry.store.tables import (
    campaign_quotas,
    campaign_rewards,
    campaign_spend,
    customers,
    entitlements,
    order_lines,
    order_tenders,
    orders,
    refund_reversals,
    refunds,
)

__all__ = [
    "ReversalRecord",
    "ReversalView",
    "reversal_of",
    "reversals_of_order",
    "reverse_refund",
]


@dataclass(frozen=True, slots=True)
class ReversalRecord:
    refund_id: str
    refused: dict[str, int]  # units per line no longer counted as refunded
    debt: int  # minor units the customer owes


def reverse_refund(
    conn: Connection,
    *,
    refund_id: str,
    accepted: dict[str, int],
    policy: Policy,
    trail: AuditTrail,
    at: datetime,
    case_id: str | None = None,
) -> ReversalRecord:
    """Undo what refund ``refund_id`` paid for units beyond ``accepted`` (units per line; empty:
    none accepted). ``refund.already_reversed`` if it was reversed before."""
    row = conn.execute(
        select(refunds.c.order_id, refunds.c.seq, refunds.c.plan).where(refunds.c.id == refund_id)
    ).one()
    inputs = load_plan_inputs(conn, row.order_id, policy=policy, lock=True, now=at)
    done = conn.execute(
        select(refund_reversals.c.refund_id).where(refund_reversals.c.refund_id == refund_id)
    ).first()
    if done is not None:
        raise Conflict(f"refund {refund_id} was reversed already", code="refund.already_reversed")
    applied = load_plan(row.plan)
    if all(accepted.get(u["line_id"], 0) >= u["quantity"] for u in applied["request"]["lines"]):
        return ReversalRecord(refund_id=refund_id, refused={}, debt=0)  # every unit accepted
    accepted_plan = _accepted_plan(inputs, applied, row.seq, accepted, policy)
    items = released_items(applied, accepted_plan)
    lost = _lost_items(conn, refund_id, [i.item_id for i in items])
    rev = plan_reversal(
        applied,
        accepted_plan,
        points_balance=inputs.customer.points_balance,
        minor_units_per_point=policy.minor_units_per_point,
        unrecoverable={i.item_id: i.value for i in items if i.item_id in lost},
    )
    order_id, customer_id = row.order_id, inputs.order.customer_id
    _release_units(conn, order_id, rev)
    _restore_assets(conn, refund_id, order_id, customer_id, rev, at)
    history = history_document(applied, accepted_plan, rev.moved)
    summary = _summary(rev)
    conn.execute(
        insert(refund_reversals).values(
            refund_id=refund_id,
            order_id=order_id,
            customer_id=customer_id,
            case_id=case_id,
            accepted=compact(
                [{"line_id": k, "quantity": q} for k, q in sorted(accepted.items()) if q]
            ),
            refused=compact(rev.units),
            plan=compact(accepted_plan) if accepted_plan is not None else None,
            history=compact(history),
            reversal=compact(summary),
            debt=rev.debt,
            actor=trail.actor,
            created_at=at,
        )
    )
    trail.record(
        "refund.reversed",
        order_id=order_id,
        refund_id=refund_id,
        case_id=case_id,
        **summary,
    )
    enqueue(
        conn,
        topic="event",
        key=f"event:refund.reversed:{refund_id}",
        at=at,
        payload={
            "type": "refund.reversed",
            "refund_id": refund_id,
            "order_id": order_id,
            "customer_id": customer_id,
            "case_id": case_id,
            "refused": rev.units,
            "debt": rev.debt,
            "currency": inputs.order.currency,
        },
    )
    fault_point("reversal.after_writes")
    return ReversalRecord(refund_id=refund_id, refused=rev.units, debt=rev.debt)


def _accepted_plan(
    inputs: PlanInputs, applied: PlanDoc, seq: int, accepted: dict[str, int], policy: Policy
) -> PlanDoc | None:
    """The step planned again with the accepted units only, from its inputs with the step
    undone and at the step's own time (None: no unit accepted)."""
    request = accepted_request(applied, accepted)
    if request is None:
        return None
    before = inputs_before_step(inputs, applied, seq, policy)
    return compute_plan(before, request, policy, datetime.fromisoformat(applied["now"]))


def _lost_items(conn: Connection, refund_id: str, item_ids: list[str]) -> set[str]:
    """Of the coupons and entitlements to restore, those the customer no longer holds as the
    step left them: a returned one used since, or the replacement of a reissued one used."""
    e = entitlements.c
    lost = set()
    for item_id in item_ids:
        replacement = f"{item_id}~{refund_id}"
        found = dict(
            conn.execute(select(e.id, e.state).where(e.id.in_([item_id, replacement]))).all()
        )
        state = found.get(replacement, found.get(item_id))
        if state not in ("available", "forfeited"):
            lost.add(item_id)
    return lost


def _release_units(conn: Connection, order_id: str, rev: Reversal) -> None:
    """The refused units are refundable again; the tenders count only what they kept."""
    ln, t = order_lines.c, order_tenders.c
    for line_id, n in rev.units.items():
        moved = conn.execute(
            update(order_lines)
            .where(ln.order_id == order_id, ln.line_id == line_id, ln.refunded_qty >= n)
            .values(refunded_qty=ln.refunded_qty - n)
        ).rowcount
        if moved != 1:
            raise Conflict(
                f"line {line_id!r} no longer holds the units to reverse",
                code="refund.concurrent",
            )
    if rev.goods_units:
        conn.execute(
            update(orders)
            .where(orders.c.id == order_id)
            .values(goods_refunded=orders.c.goods_refunded - rev.goods_units)
        )
    for tender_id, amount in rev.tenders.items():
        conn.execute(
            update(order_tenders)
            .where(t.order_id == order_id, t.tender_id == tender_id)
            .values(refunded=t.refunded - amount)
        )


def _restore_assets(
    conn: Connection, refund_id: str, order_id: str, customer_id: str, rev: Reversal, at: datetime
) -> None:
    """Points, growth, tier, coupons and entitlements, campaign spend, quotas and rewards as
    the accepted-only step leaves them."""
    # Earned points first: the redeemed points taken next may be the ones just given back.
    postings = (
        ("points_reverse_earned", "points", rev.earned_back, "earned points given back"),
        ("points_return_redeemed", "points", -rev.points_taken, "redeemed points taken back"),
        ("growth_reverse", "growth", rev.growth_back, "growth value given back"),
    )
    for effect, kind, amount, memo in postings:
        post(
            conn,
            journal_id=f"reversal:{refund_id}:{effect}",
            kind=kind,
            customer_id=customer_id,
            amount=amount,
            memo=f"express refund reversed: {memo}",
            at=at,
            order_id=order_id,
            refund_id=refund_id,
        )
    changes, tier = rev.tier
    if changes:
        conn.execute(update(customers).where(customers.c.id == customer_id).values(tier=tier))
    e = entitlements.c
    for item in rev.items:
        if item.item_id in rev.unrecoverable:
            continue
        conn.execute(
            update(entitlements)
            .where(e.id == item.item_id)
            .values(state="used", order_id=order_id, updated_at=at)
        )
        if item.effect.endswith("_reissue"):
            conn.execute(
                update(entitlements)
                .where(e.id == f"{item.item_id}~{refund_id}")
                .values(state="revoked", updated_at=at)
            )
    s, q, r = campaign_spend.c, campaign_quotas.c, campaign_rewards.c
    for campaign_id, amount in rev.spend_back.items():
        conn.execute(
            update(campaign_spend)
            .where(s.customer_id == customer_id, s.campaign_id == campaign_id)
            .values(spend=s.spend + amount)
        )
    for campaign_id, n in rev.quotas_back.items():
        conn.execute(
            update(campaign_quotas)
            .where(q.customer_id == customer_id, q.campaign_id == campaign_id)
            .values(used=q.used + n)
        )
    for reward_id, amount in rev.rewards_back.items():
        conn.execute(
            update(campaign_rewards)
            .where(r.id == reward_id)
            .values(
                reduced=r.reduced - amount,
                status=case(
                    (r.status == "clawed_back", "granted"),
                    (r.status == "cancelled", "pending"),
                    else_=r.status,
                ),
            )
        )


def _summary(rev: Reversal) -> dict[str, Any]:
    """The reversal as its record, audit entry and views show it."""
    return {
        "refused": rev.units,
        "debt": rev.debt,
        # per tender: what it holds of the step after the reversal, and what came back from it
        # (one key: what a merchant's audit hides, like every tender; services/access.py)
        "tenders": {"kept": rev.moved, "taken_back": rev.tenders},
        "points_taken": rev.points_taken,
        "points_kept": rev.points_kept,
        "earned_points_back": rev.earned_back,
        "growth_back": rev.growth_back,
        "tier": {"changes": rev.tier[0], "to": rev.tier[1]},
        "items_restored": [i.item_id for i in rev.items if i.item_id not in rev.unrecoverable],
        "items_in_debt": rev.unrecoverable,
        "spend_back": rev.spend_back,
        "quotas_back": rev.quotas_back,
        "rewards_back": rev.rewards_back,
    }


@dataclass(frozen=True, slots=True)
class ReversalView:
    """A refund's reversal as the order, refund and case views show it."""

    refund_id: str
    case_id: str | None
    refused: dict[str, int]  # units per line no longer counted as refunded
    debt: int  # minor units the customer owes for units it kept
    points_taken: int  # redeemed points taken back from the balance
    earned_points_back: int  # earned points the step had reversed, given back
    items_restored: tuple[str, ...]  # coupons and entitlements used by the order again
    items_in_debt: dict[str, int]  # those the customer used or lost since: their value owed
    at: datetime


def _reversal_view(row: Any) -> ReversalView:
    doc = json.loads(row.reversal)
    return ReversalView(
        refund_id=row.refund_id,
        case_id=row.case_id,
        refused=doc["refused"],
        debt=int(row.debt),
        points_taken=doc["points_taken"],
        earned_points_back=doc["earned_points_back"],
        items_restored=tuple(doc["items_restored"]),
        items_in_debt=doc["items_in_debt"],
        at=row.created_at,
    )


def reversal_of(conn: Connection, refund_id: str) -> ReversalView | None:
    """A refund's reversal, None if it has none."""
    found = conn.execute(
        select(refund_reversals).where(refund_reversals.c.refund_id == refund_id)
    ).first()
    return None if found is None else _reversal_view(found)


def reversals_of_order(conn: Connection, order_id: str) -> tuple[ReversalView, ...]:
    """The order's reversals, oldest first."""
    rv = refund_reversals.c
    return tuple(
        _reversal_view(row)
        for row in conn.execute(
            select(refund_reversals)
            .where(rv.order_id == order_id)
            .order_by(rv.created_at, rv.refund_id)
        )
    )
