"""Undoing what a 极速退款 paid for goods the inspection refused (SPEC §4).

An express refund applies the plan for every unit asked before the goods arrive. When the
inspection then refuses some of them (``fail``: all; ``partial``: those not accepted), the
refused units must not stay counted as refunded. The reversal puts the store where it would be
had the step refunded only the accepted units: the step is planned again with the accepted units
alone, from the inputs the step was planned from (``snapshot_before``, ``statuses_before``: the
customer and the order's rewards with the step undone), and the difference between the applied
plan and that one is given back or taken back (``plan_reversal``):

- units: the refused ones are refundable again;
- coupons and entitlements the step gave back that the accepted-only step does not: used by the
  order again (their value joins the debt when the customer has used or lost them since);
- points: earned points the step took back and the accepted-only step does not come back;
  redeemed points the step returned and the accepted-only step does not are taken back, as far
  as the balance holds them (the rest stays with the customer and joins the debt);
- campaign spend, participation quotas, reward claw-backs and cancellations, the growth value and
  the tier: as the accepted-only step leaves them.

Money paid to a cash tender (card, wallet, gift card) is not taken back: it stays counted as
refunded to that tender (the gateway did refund it) and what it paid beyond the accepted-only
step is the case's debt, for an agent to recover. The order's later steps see that money in
their history, so a later refund of the refused units pays only what the debt leaves (the plan's
``carry``). Everything here is pure: the services read the store and write the result.

An agent settles what is still owed in parts (``debt_after``): each part recovered (from the
wallet, or paid back outside refundry) or written off lowers what is owed, never below zero; a
part that is not a whole positive number of minor units within what is owed is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from refundry.domain.customer import CampaignReward, CustomerSnapshot
from refundry.domain.errors import InvalidInput
from refundry.domain.plan_doc import EffectDoc, PlanDoc

__all__ = [
    "ITEM_EFFECTS",
    "RestoredItem",
    "Reversal",
    "accepted_request",
    "debt_after",
    "history_document",
    "plan_reversal",
    "released_items",
    "snapshot_before",
    "statuses_before",
]

# Effects that change a coupon's or an entitlement's state: their kind -> the state they set.
ITEM_EFFECTS = {
    "coupon_return": "available",
    "entitlement_reactivate": "available",
    "coupon_forfeit": "forfeited",
    "entitlement_forfeit": "forfeited",
    "coupon_reissue": "replaced",
    "entitlement_reissue": "replaced",
}
# A reward's status before a step that reduced it to nothing.
_STATUS_BEFORE = {"clawed_back": "granted", "cancelled": "pending"}


@dataclass(frozen=True, slots=True)
class RestoredItem:
    """A coupon or entitlement the applied step released and the accepted-only step keeps used
    by the order: ``effect`` the applied step's effect kind, ``replacement`` the coupon issued in
    its place (reissue: ``<item>~<refund id>``), ``value`` what it is worth."""

    item_id: str
    effect: str
    value: int


@dataclass(frozen=True, slots=True)
class Reversal:
    """What the reversal gives back (positive) or takes back, and the debt it leaves."""

    units: dict[str, int]  # refused units per line, refundable again
    goods_units: int  # of them, units that are not gifts
    tenders: dict[str, int]  # money per tender no longer counted as refunded
    moved: dict[str, int]  # money per tender the step moved, after the reversal
    points_taken: int  # redeemed points taken back from the balance
    points_kept: int  # redeemed points the balance no longer holds: they join the debt
    earned_back: int  # earned points the step had taken back, given back
    growth_back: int
    tier: tuple[bool, str | None]  # (changes, the tier after the reversal)
    items: tuple[RestoredItem, ...]
    spend_back: dict[str, int]  # cumulative spend per campaign
    quotas_back: dict[str, int]  # participations used again per campaign
    rewards_back: dict[str, int]  # reward id -> claw-back or cancellation undone
    debt: int  # what the customer holds for units it kept (minor units, >= 0)
    unrecoverable: dict[str, int] = field(default_factory=dict)  # item id -> value in the debt


def accepted_request(applied: PlanDoc, accepted: Mapping[str, int]) -> dict[str, Any] | None:
    """The applied step's request with the accepted units only (None: none accepted)."""
    lines = [
        {"line_id": u["line_id"], "quantity": q}
        for u in applied["request"]["lines"]
        if (q := min(max(accepted.get(u["line_id"], 0), 0), u["quantity"]))
    ]
    if not lines:
        return None
    return {**applied["request"], "lines": lines}


def _effects(plan: PlanDoc | None, kind: str) -> list[EffectDoc]:
    return [e for e in (plan["effects"] if plan else []) if e["type"] == kind]


def _field(effect: EffectDoc, key: str) -> Any:
    return cast(Mapping[str, Any], effect).get(key)


def _sum_by(plan: PlanDoc | None, kinds: tuple[str, ...], key: str) -> dict[str, int]:
    """Per campaign or reward (``key``), the effects' amounts."""
    out: dict[str, int] = {}
    for kind in kinds:
        for e in _effects(plan, kind):
            ref = str(_field(e, key))
            out[ref] = out.get(ref, 0) + int(e.get("amount", 0))
    return out


def _less(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0) > 0}


def _one(plan: PlanDoc | None, kind: str, key: str) -> int:
    return sum(int(_field(e, key) or 0) for e in _effects(plan, kind))


def _redeemed_points(plan: PlanDoc) -> int:
    return sum(t["points"] for t in plan["tenders"] if t["kind"] == "points" and t["amount"])


def snapshot_before(customer: CustomerSnapshot, applied: PlanDoc) -> CustomerSnapshot:
    """The customer as it would be now had the applied step not been applied: its points,
    growth, cumulative spend, quotas and rewards with the step's effects undone."""
    points = customer.points_balance + _one(applied, "points_reverse_earned", "from_balance")
    points -= _redeemed_points(applied)
    wallet = customer.wallet_balance - sum(
        t["amount"] for t in applied["tenders"] if t["kind"] == "wallet"
    )
    spend = dict(customer.campaign_spend)
    for cid, amount in _sum_by(applied, ("campaign_spend_decrease",), "campaign_id").items():
        spend[cid] = spend.get(cid, 0) + amount
    quotas = dict(customer.quotas_used)
    released = ("quota_release", "first_purchase_restored")
    for cid, n in _count_by(applied, released).items():
        quotas[cid] = quotas.get(cid, 0) + n
    reduced = _sum_by(applied, ("reward_clawback", "reward_cancel"), "reward_id")
    rewards = tuple(_reward_before(r, reduced.get(r.id, 0)) for r in customer.campaign_rewards)
    return replace(
        customer,
        points_balance=points,
        wallet_balance=wallet,
        growth_value=customer.growth_value + _one(applied, "growth_reverse", "amount"),
        campaign_spend=spend,
        quotas_used=quotas,
        campaign_rewards=rewards,
    )


def _count_by(plan: PlanDoc | None, kinds: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        for e in _effects(plan, kind):
            cid = str(e.get("campaign_id"))
            out[cid] = out.get(cid, 0) + 1
    return out


def _reward_before(reward: CampaignReward, reduced: int) -> CampaignReward:
    if not reduced:
        return reward
    status = _STATUS_BEFORE.get(reward.status, reward.status)
    return replace(reward, amount=reward.amount + reduced, status=status)


def statuses_before(statuses: Mapping[str, str], applied: PlanDoc) -> dict[str, str]:
    """The order's reward statuses had the applied step not been applied: a reward it reduced
    to nothing is granted (clawed back) or pending (cancelled) again."""
    reduced = _sum_by(applied, ("reward_clawback", "reward_cancel"), "reward_id")
    return {rid: _STATUS_BEFORE.get(s, s) if reduced.get(rid) else s for rid, s in statuses.items()}


def _items(plan: PlanDoc | None) -> dict[str, EffectDoc]:
    found: dict[str, EffectDoc] = {}
    for e in plan["effects"] if plan else []:
        if e["type"] in ITEM_EFFECTS:
            found[str(e.get("coupon_id") or e.get("entitlement_id"))] = e
    return found


def released_items(applied: PlanDoc, accepted: PlanDoc | None) -> list[RestoredItem]:
    """The coupons and entitlements the applied step released that the accepted-only step
    leaves used by the order."""
    kept = _items(accepted)
    return [
        RestoredItem(
            item_id=item,
            effect=e["type"],
            value=int(e.get("value", 0)),
        )
        for item, e in _items(applied).items()
        if item not in kept
    ]


def _tier(applied: PlanDoc, accepted: PlanDoc | None) -> tuple[bool, str | None]:
    changes = _effects(accepted, "tier_change")
    if changes:
        return True, changes[-1].get("to")
    before = _effects(applied, "tier_change")
    if before:
        return True, before[0].get("from")
    return False, None


def plan_reversal(
    applied: PlanDoc,
    accepted: PlanDoc | None,
    *,
    points_balance: int,
    minor_units_per_point: int,
    unrecoverable: Mapping[str, int] | None = None,
) -> Reversal:
    """The difference between the ``applied`` step and the ``accepted``-only step planned from
    the same inputs (None: nothing accepted). ``points_balance``: the customer's now;
    ``unrecoverable``: coupons and entitlements to restore that the customer has used or lost
    since, with their value (joins the debt)."""
    unrecoverable = dict(unrecoverable or {})
    acc_units = {u["line_id"]: u["quantity"] for u in (accepted["units"] if accepted else [])}
    units = {
        u["line_id"]: u["quantity"] - acc_units.get(u["line_id"], 0)
        for u in applied["units"]
        if u["quantity"] - acc_units.get(u["line_id"], 0) > 0
    }
    goods_units = sum(units.get(u["line_id"], 0) for u in applied["units"] if not u["gift"])
    earned_back = max(
        _one(applied, "points_reverse_earned", "from_balance")
        - _one(accepted, "points_reverse_earned", "from_balance"),
        0,
    )
    acc_tenders = {t["tender_id"]: t for t in (accepted["tenders"] if accepted else [])}
    less: dict[str, int] = {}
    moved: dict[str, int] = {}
    taken = kept = 0
    holds = max(points_balance + earned_back, 0)
    for t in applied["tenders"]:
        tid = t["tender_id"]
        acc = acc_tenders.get(tid)
        acc_amount, acc_points = (acc["amount"], acc["points"]) if acc else (0, 0)
        moved[tid] = t["amount"]
        if t["kind"] != "points" or t["points"] <= acc_points:
            continue
        owed = t["points"] - acc_points
        take = min(owed, holds - taken)
        taken += take
        kept += owed - take
        back = t["amount"] - acc_amount if take == owed else take * minor_units_per_point
        less[tid] = back
        moved[tid] = t["amount"] - back
    items = tuple(released_items(applied, accepted))
    acc_total = accepted["amount"]["total"] if accepted else 0
    debt = sum(moved.values()) - acc_total + sum(unrecoverable.values())
    return Reversal(
        units=units,
        goods_units=goods_units,
        tenders={k: v for k, v in less.items() if v},
        moved=moved,
        points_taken=taken,
        points_kept=kept,
        earned_back=earned_back,
        growth_back=max(
            _one(applied, "growth_reverse", "amount") - _one(accepted, "growth_reverse", "amount"),
            0,
        ),
        tier=_tier(applied, accepted),
        items=items,
        spend_back=_less(
            _sum_by(applied, ("campaign_spend_decrease",), "campaign_id"),
            _sum_by(accepted, ("campaign_spend_decrease",), "campaign_id"),
        ),
        quotas_back=_less(
            _count_by(applied, ("quota_release", "first_purchase_restored")),
            _count_by(accepted, ("quota_release", "first_purchase_restored")),
        ),
        rewards_back=_less(
            _sum_by(applied, ("reward_clawback", "reward_cancel"), "reward_id"),
            _sum_by(accepted, ("reward_clawback", "reward_cancel"), "reward_id"),
        ),
        debt=max(debt, 0),
        unrecoverable=unrecoverable,
    )


def history_document(
    applied: PlanDoc, accepted: PlanDoc | None, moved: Mapping[str, int]
) -> dict[str, Any]:
    """The step as later plans read it (``parse_history``): the accepted-only step's units,
    deductions and effects, with the money each tender really kept (``moved``)."""
    held = accepted is not None and accepted["status"] != "ready"
    return {
        "status": "ready",
        "request": accepted["request"] if accepted else {**applied["request"], "lines": []},
        "tenders": [{"tender_id": tid, "amount": amount} for tid, amount in moved.items()],
        # A held accepted-only step moves nothing and so deducts nothing.
        "deductions": accepted["deductions"] if accepted and not held else [],
        "effects": accepted["effects"] if accepted else [],
    }


def debt_after(owed: int, part: int) -> int:
    """What is still owed after ``part`` of the debt ``owed`` is recovered or written off:
    ``case.debt_amount_invalid`` unless 1 <= part <= owed (whole minor units)."""
    if type(part) is not int or not 1 <= part <= owed:
        raise InvalidInput(
            f"the amount must be a whole number of minor units from 1 to the {owed} owed",
            code="case.debt_amount_invalid",
            field="amount",
        )
    return owed - part
