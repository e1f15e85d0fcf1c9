"""What a bulk refund would move, computed and not written (``--dry-run``, the API's dry run).

Each selected order's plan is made as the job would make it (the same request: the selected
lines' free units, refund_only, the job's reason and policy) in read-only transactions, and the
plans are added up: orders and refunds, money per currency and tender kind, claw-backs and
other deductions per kind, coupons returned / reissued / forfeited, points given back, taken
back and cancelled, the orders whose plan needs an agent's review, the orders with units left
to an open case, and the refusals per code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from refundry.domain.errors import RefundryError
from refundry.domain.plan_doc import PlanDoc
from refundry.domain.policy import Policy
from refundry.services.bulk.asking import units_to_ask
from refundry.services.bulk.selection import Selector, matching_orders
from refundry.services.refunds.apply import compute_plan
from refundry.services.refunds.state import load_plan_inputs
from refundry.services.uow import UnitOfWork

__all__ = ["DryRun", "dry_run"]

_CHUNK = 500  # orders per read-only transaction
_POINTS = {
    "points_return_redeemed": "returned",
    "points_reverse_earned": "reversed",
    "points_cancel_pending": "cancelled",
}
_COUPONS = {
    "coupon_return": "returned",
    "coupon_reissue": "reissued",
    "coupon_forfeit": "forfeited",
}


@dataclass(slots=True)
class DryRun:
    orders: int = 0  # selected
    refunds: int = 0  # plans ready to apply
    # currency -> tender kind -> minor units
    money: dict[str, dict[str, int]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)  # currency -> minor units
    # currency -> deduction kind (reward_clawback, discount_clawback…) -> minor units
    deductions: dict[str, dict[str, int]] = field(default_factory=dict)
    coupons: dict[str, int] = field(default_factory=dict)  # returned | reissued | forfeited
    points: dict[str, int] = field(default_factory=dict)  # returned | reversed | cancelled
    manual_review: list[tuple[str, str]] = field(default_factory=list)  # (order id, why)
    held_by_case: list[tuple[str, int]] = field(default_factory=list)  # (order id, units)
    refused: dict[str, list[str]] = field(default_factory=dict)  # code -> order ids

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "refunds": self.refunds,
            "money": self.money,
            "total": self.total,
            "deductions": self.deductions,
            "coupons": self.coupons,
            "points": self.points,
            "manual_review": [{"order_id": o, "why": w} for o, w in self.manual_review],
            "held_by_case": [{"order_id": o, "units": n} for o, n in self.held_by_case],
            "refused": self.refused,
        }

    def add(self, plan: PlanDoc) -> None:
        self.refunds += 1
        cur = plan["currency"]
        per_kind = self.money.setdefault(cur, {})
        for share in plan["tenders"]:
            if share["amount"]:
                per_kind[share["kind"]] = per_kind.get(share["kind"], 0) + share["amount"]
        self.total[cur] = self.total.get(cur, 0) + plan["amount"]["total"]
        taken = self.deductions.setdefault(cur, {})
        for d in plan["deductions"]:
            taken[d["kind"]] = taken.get(d["kind"], 0) + d["amount"]
        for effect in plan["effects"]:
            kind = effect["type"]
            if kind in _COUPONS:
                self.coupons[_COUPONS[kind]] = self.coupons.get(_COUPONS[kind], 0) + 1
            elif kind in _POINTS:
                name = _POINTS[kind]
                self.points[name] = self.points.get(name, 0) + int(effect.get("points", 0))


def dry_run(
    engine: Engine, *, selector: Selector, reason: str, policy: Policy, now: datetime
) -> DryRun:
    """The sum of the plans the job would apply now (nothing is written)."""
    summary = DryRun()
    with UnitOfWork(engine, readonly=True) as uow:
        selected = [order_id for order_id, _ in matching_orders(uow.conn, selector)]
    summary.orders = len(selected)
    for start in range(0, len(selected), _CHUNK):
        with UnitOfWork(engine, readonly=True) as uow:
            for order_id in selected[start : start + _CHUNK]:
                try:
                    inputs = load_plan_inputs(uow.conn, order_id, policy=policy, now=now)
                    asked = units_to_ask(
                        uow.conn, order_id=order_id, selector=selector, reason=reason
                    )
                    plan = compute_plan(inputs, asked.request, policy, now)
                except RefundryError as exc:
                    summary.refused.setdefault(exc.code, []).append(order_id)
                    continue
                if asked.held_by_case:
                    summary.held_by_case.append((order_id, asked.held_by_case))
                if plan["status"] != "ready":
                    review = plan["manual_review"]
                    why = review["code"] if review else "plan.needs_manual_review"
                    summary.manual_review.append((order_id, why))
                    continue
                summary.add(plan)
    return summary
