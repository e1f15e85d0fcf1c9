"""The plan as a document: the JSON shape of docs/plan-json.md, typed.

The engine computes a ``Plan`` of named tuples (refundry/domain/plan_types.py); everything after
the engine — the preview a customer is shown, the stored plan an apply checks against, the
effects the store writes, the case that keeps its plan — handles the plan as this document,
because that is what is hashed, stored and shown. The ``TypedDict`` classes below are that
document's shape: at run time they are plain dicts (no cost on the apply path), and mypy checks
every key a service reads.

``plan_hash`` hashes what a plan *does* (not when or from what), so an apply can refuse a plan
that would now do something else than what was previewed (``plan.stale``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NotRequired, TypedDict, cast

from refundry.domain.json_text import compact, instant, parse_stored
from refundry.domain.plan_types import Plan, Scalar

__all__ = [
    "AmountDoc",
    "DeductionDoc",
    "EffectDoc",
    "ManualReviewDoc",
    "NotificationDoc",
    "PlanDoc",
    "RequestDoc",
    "RequestLineDoc",
    "TenderDoc",
    "UnitDoc",
    "dumps_plan",
    "dumps_plan_compact",
    "hash_and_text",
    "load_plan",
    "plan_hash",
    "plan_to_dict",
]

PLAN_SCHEMA = "refundry.plan/1"


class RequestLineDoc(TypedDict):
    line_id: str
    quantity: int


class RequestDoc(TypedDict):
    order_id: str
    reason: str
    kind: str  # refund_only | return_and_refund
    return_method: str | None
    lines: list[RequestLineDoc]


class ManualReviewDoc(TypedDict):
    code: str  # plan.deductions_exceed_amount
    excess: int  # what an agent must waive or debit (minor units)
    resolution: NotRequired[str]  # waiver | wallet_debit, once an agent conceded it


class UnitDoc(TypedDict):
    line_id: str
    sku: str
    quantity: int
    gift: bool
    refunded_before: int
    refunded_after: int
    of: int
    list: int
    paid: int


class AmountDoc(TypedDict):
    goods: int
    give_backs: int
    shipping: int
    deductions: int
    carry: int
    rounding: int
    total: int


class TenderDoc(TypedDict):
    tender_id: str
    kind: str
    amount: int
    points: int
    refunded_after: int
    paid: int


class DeductionDoc(TypedDict):
    kind: str
    ref: str
    amount: int
    reason: str
    rule: str


# One effect: ``type`` (an EffectKind's value), ``reason`` and ``rule`` always; the rest as its
# type has them (docs/plan-json.md). The functional form because one key is ``from``.
EffectDoc = TypedDict(
    "EffectDoc",
    {
        "type": str,
        "reason": str,
        "rule": str,
        "amount": NotRequired[int],
        "points": NotRequired[int],
        "kind": NotRequired[str],
        "tender_id": NotRequired[str],
        "from_balance": NotRequired[int],
        "shortfall": NotRequired[int],
        "adjustment_id": NotRequired[str | None],
        "coupon_id": NotRequired[str],
        "entitlement_id": NotRequired[str],
        "value": NotRequired[int],
        "valid_until": NotRequired[str | None],
        "campaign_id": NotRequired[str],
        "reward_id": NotRequired[str],
        "line_id": NotRequired[str],
        "spend_after": NotRequired[int],
        "used_after": NotRequired[int],
        "high_value": NotRequired[bool],
        "why": NotRequired[str],
        "due": NotRequired[int],
        "growth_after": NotRequired[int],
        "from": NotRequired[str],
        "to": NotRequired[str],
        "payer": NotRequired[str],
    },
)


class NotificationDoc(TypedDict):
    template: str
    params: dict[str, Scalar]


class PlanDoc(TypedDict):
    schema: str  # refundry.plan/1
    order_id: str
    currency: str
    now: str  # RFC 3339
    input_hash: str
    request: RequestDoc
    status: str  # ready | needs_manual_review
    manual_review: ManualReviewDoc | None
    units: list[UnitDoc]
    amount: AmountDoc
    tenders: list[TenderDoc]
    deductions: list[DeductionDoc]
    give_backs: list[DeductionDoc]
    effects: list[EffectDoc]
    notifications: list[NotificationDoc]
    plan_hash: NotRequired[str]  # a stored or previewed plan carries it


def plan_to_dict(plan: Plan) -> PlanDoc:
    req = plan.request
    return {
        "schema": PLAN_SCHEMA,
        "order_id": plan.order_id,
        "currency": plan.currency,
        "now": instant(plan.now),
        "input_hash": plan.input_hash,
        "request": {
            "order_id": req.order_id,
            "reason": req.reason,
            "kind": req.kind,
            "return_method": req.return_method,
            "lines": [{"line_id": u.line_id, "quantity": u.quantity} for u in req.lines],
        },
        "status": plan.status,
        "manual_review": cast(ManualReviewDoc | None, plan.manual_review),
        "units": [cast(UnitDoc, u._asdict()) for u in plan.units],
        "amount": cast(AmountDoc, plan.amount._asdict()),
        "tenders": [cast(TenderDoc, t._asdict()) for t in plan.tenders],
        "deductions": [cast(DeductionDoc, d._asdict()) for d in plan.deductions],
        "give_backs": [cast(DeductionDoc, g._asdict()) for g in plan.give_backs],
        "effects": [
            cast(EffectDoc, {"type": e.type, **e.data, "reason": e.reason, "rule": e.rule})
            for e in plan.effects
        ],
        "notifications": [{"template": n.template, "params": n.params} for n in plan.notices],
    }


def load_plan(text: str) -> PlanDoc:
    """A stored plan's text (``refunds.plan``, ``cases.plan``) as its document."""
    return cast(PlanDoc, parse_stored(text))


_NOT_CONTENT = ("input_hash", "plan_hash", "now")


def plan_hash(plan: PlanDoc) -> str:
    """The hash of what a plan does (amounts, effects, notices), not of when or from what.

    A preview carries it; applying recomputes the plan and refuses with ``plan.stale`` when the
    hash differs, i.e. when the refund would now do something else than what was shown.
    """
    content = {k: v for k, v in plan.items() if k not in _NOT_CONTENT}
    text = compact(content)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_and_text(plan: PlanDoc) -> tuple[str, str]:
    """``plan_hash(plan)`` and ``dumps_plan_compact`` of the plan with that hash added."""
    digest = plan_hash(plan)
    return digest, dumps_plan_compact(cast(PlanDoc, {**plan, "plan_hash": digest}))


def dumps_plan(plan: PlanDoc | dict[str, Any]) -> str:
    """The canonical text of a plan: byte-identical for equal plans in any process."""
    return json.dumps(plan, sort_keys=True, ensure_ascii=False, indent=2)


def dumps_plan_compact(plan: PlanDoc | dict[str, Any]) -> str:
    """The canonical compact text of a plan (how the store keeps it): byte-identical for equal
    plans in any process, the same JSON value as ``dumps_plan`` without its indentation (which
    makes ``json`` fall back to its pure-Python encoder)."""
    return compact(plan)
