"""A deliberately simple, slow, independent reference model of the refund computation.

It is written from docs/refund-rules.md and SPEC.md §1-§3 only and shares no code with
``refundry``. It works on the JSON dicts of docs/plan-json.md and keeps its own state:
refunded units per line, refunded amount per tender, reward reductions, permanent deductions
(claw-backs, points shortfalls, labels), and the customer's position (points balance, growth,
campaign spend and rewards, quotas), so that a harness can build the next customer snapshot.

Everything is computed the obvious way: proportional splits with ``fractions.Fraction``,
cumulative rounding by recomputing ``floor(X * k / n)`` from scratch, and the amount of a step as
``entitled(after) - moved_before`` where ``entitled`` is evaluated literally from the formula of
refund-rules.md §3.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

JSON = dict[str, Any]

DEFAULT_MERCHANT_FAULT = ("quality_issue", "wrong_item", "not_received", "merchant_breach")
READY = "ready"
MANUAL = "needs_manual_review"


class ReferenceError_(Exception):
    """A request the reference refuses; ``code`` mirrors refund-rules.md §10."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------------------------
# Arithmetic: Fraction based, no cleverness.
# --------------------------------------------------------------------------------------------


def frac_floor(x: Fraction) -> int:
    return math.floor(x)


def ref_split(total: int, weights: Sequence[int]) -> list[int]:
    """Largest remainder split of ``total`` in proportion to ``weights``, ties to the earlier."""
    w_sum = sum(weights)
    if w_sum <= 0:
        raise ValueError("weights must have a positive sum")
    quotas = [Fraction(total) * Fraction(w, w_sum) for w in weights]
    parts = [frac_floor(q) for q in quotas]
    left = total - sum(parts)
    ranking = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in ranking[:left]:
        parts[i] += 1
    assert sum(parts) == total
    return parts


def ref_part(total: int, k: int, n: int) -> int:
    """Cumulative rounding: what the first ``k`` of ``n`` units carry of ``total``."""
    if n <= 0:
        raise ValueError("n must be positive")
    return frac_floor(Fraction(total) * Fraction(k, n))


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --------------------------------------------------------------------------------------------
# Static view of an order.
# --------------------------------------------------------------------------------------------


@dataclass
class RefLine:
    id: str
    unit_price: int
    quantity: int
    gift_of: str | None
    declared_value: int

    @property
    def list_subtotal(self) -> int:
        return self.unit_price * self.quantity

    @property
    def is_gift(self) -> bool:
        return self.gift_of is not None


@dataclass
class ResolvedPolicy:
    mpp: int = 1
    points_shortfall: str = "deduct_from_refund"
    coupon_reissue_days: int = 7
    expired_coupon: str = "reissue"
    shipping_refund: str = "unshipped_or_merchant_fault"
    merchant_fault_reasons: tuple[str, ...] = DEFAULT_MERCHANT_FAULT
    return_label_cost: int = 1000
    return_pickup_cost: int | None = None  # None: the label's cost

    @classmethod
    def from_json(cls, policy: Mapping[str, Any] | None) -> ResolvedPolicy:
        p = dict(policy or {})
        return cls(
            mpp=int(p.get("minor_units_per_point", 1)),
            points_shortfall=str(p.get("points_shortfall", "deduct_from_refund")),
            coupon_reissue_days=int(p.get("coupon_reissue_days", 7)),
            expired_coupon=str(p.get("expired_coupon", "reissue")),
            shipping_refund=str(p.get("shipping_refund", "unshipped_or_merchant_fault")),
            merchant_fault_reasons=tuple(p.get("merchant_fault_reasons", DEFAULT_MERCHANT_FAULT)),
            return_label_cost=int(p.get("return_label_cost", 1000)),
            return_pickup_cost=(
                int(p["return_pickup_cost"]) if "return_pickup_cost" in p else None
            ),
        )


def apportion(order: Mapping[str, Any]) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """(share of each adjustment per line, paid amount per goods line), refund-rules §1."""
    lines = [line for line in order["lines"] if line.get("gift_of") is None]
    pos = {line["id"]: i for i, line in enumerate(order["lines"])}
    subtotal = {line["id"]: line["unit_price"] * line["quantity"] for line in lines}
    shares: dict[str, dict[str, int]] = {}
    for adj in order.get("adjustments", []):
        ids = sorted(adj["lines"], key=lambda lid: pos[lid])
        weights = [subtotal[lid] for lid in ids]
        parts = ref_split(adj["amount"], weights)
        shares[adj["id"]] = dict(zip(ids, parts, strict=True))
    paid = {lid: subtotal[lid] - sum(s.get(lid, 0) for s in shares.values()) for lid in subtotal}
    return shares, paid


@dataclass
class StepResult:
    """The reference's view of one plan (normalised, comparable)."""

    status: str
    excess: int | None
    amount: dict[str, int]
    tenders: dict[str, dict[str, int]]
    deductions: dict[tuple[str, str], int]
    give_backs: dict[tuple[str, str], int]
    units: dict[str, dict[str, int]]
    points_redeemed_returned: int = 0
    points_reverse_due: int = 0
    points_from_balance: int = 0
    points_shortfall: int = 0
    points_cancelled: int = 0
    reward_clawbacks: dict[str, int] = field(default_factory=dict)
    reward_cancels: dict[str, int] = field(default_factory=dict)
    coupons_returned: list[str] = field(default_factory=list)
    coupons_reissued: dict[str, int] = field(default_factory=dict)
    coupons_forfeited: list[str] = field(default_factory=list)
    reissued_valid_until: dict[str, datetime] = field(default_factory=dict)  # coupons and ents
    entitlements_reactivated: list[str] = field(default_factory=list)
    entitlements_reissued: list[str] = field(default_factory=list)
    entitlements_forfeited: list[str] = field(default_factory=list)
    quota_released: list[str] = field(default_factory=list)
    eligibility_withheld: list[str] = field(default_factory=list)
    first_purchase_restored: bool = False
    campaign_spend_decrease: dict[str, int] = field(default_factory=dict)
    growth_reversed: int = 0
    tier_change: tuple[str | None, str | None] | None = None
    shipping_refunded: bool = False
    overpay: int = 0  # ``amount.rounding``: what a rounded-up points tender adds this step

    def tender_sum(self) -> int:
        return sum(t["amount"] for t in self.tenders.values())


class ReferenceModel:
    """Literal implementation of refund-rules.md, stepping through a refund sequence."""

    def __init__(
        self,
        order: Mapping[str, Any],
        snapshot: Mapping[str, Any],
        policy: Mapping[str, Any] | None = None,
    ) -> None:
        self.order: JSON = copy.deepcopy(dict(order))
        self.policy = ResolvedPolicy.from_json(policy)
        self.lines = {
            line["id"]: RefLine(
                id=line["id"],
                unit_price=line["unit_price"],
                quantity=line["quantity"],
                gift_of=line.get("gift_of"),
                declared_value=line.get("declared_value", 0),
            )
            for line in self.order["lines"]
        }
        self.line_order = [line["id"] for line in self.order["lines"]]
        self.goods_ids = [lid for lid in self.line_order if not self.lines[lid].is_gift]
        self.gift_ids = [lid for lid in self.line_order if self.lines[lid].is_gift]
        self.shares, self.paid = apportion(self.order)
        self.gp = sum(self.paid.values())
        self.campaigns = {c["id"]: c for c in self.order.get("campaigns", [])}
        self.adjustments = {a["id"]: a for a in self.order.get("adjustments", [])}
        self.tender_list: list[JSON] = list(self.order["tenders"])
        self.shipping_fee = int(self.order.get("shipping_fee", 0))
        total_tenders = sum(t["amount"] for t in self.tender_list)
        assert total_tenders == self.gp + self.shipping_fee, "tenders must sum to GP + shipping"
        for lid, p in self.paid.items():
            assert p >= 0, f"line {lid} below zero"

        # --- refund state
        self.refunded: dict[str, int] = dict.fromkeys(self.line_order, 0)
        self.tender_refunded: dict[str, int] = {t["id"]: 0 for t in self.tender_list}
        self.reward_reductions: dict[str, int] = {}
        self.permanent = 0  # reward claw-backs + shortfalls + labels, all steps so far
        self.shipping_refunded = False
        self.reasons: list[str] = []
        self.moved = 0
        self.steps = 0
        self.stopped = False
        self.points_cancelled_total = 0
        self.points_reversed_total = 0
        self.growth_reversed_total = 0

        # --- the customer's position
        snap = copy.deepcopy(dict(snapshot))
        self.snapshot_base: JSON = snap
        self.points_balance = int(snap.get("points_balance", 0))
        self.growth = int(snap.get("growth_value", 0))
        self.campaign_spend: dict[str, int] = dict(snap.get("campaign_spend", {}))
        self.campaign_rewards: list[JSON] = [dict(r) for r in snap.get("campaign_rewards", [])]
        self.quotas_used: dict[str, int] = dict(snap.get("quotas_used", {}))
        self.coupons = {c["id"]: c for c in snap.get("coupons", [])}
        self.entitlements = {e["id"]: e for e in snap.get("entitlements", [])}
        self.risk_flags = list(snap.get("risk_flags", []))
        self.other_orders = list(snap.get("other_orders", []))
        self.tier_table = list(snap.get("tier_table", []))

    # ---------------------------------------------------------------- customer snapshot
    def customer_snapshot(self) -> JSON:
        """The customer as the next plan sees it, after every step applied so far."""
        snap = copy.deepcopy(self.snapshot_base)
        snap["points_balance"] = self.points_balance
        snap["growth_value"] = self.growth
        snap["campaign_spend"] = dict(self.campaign_spend)
        snap["campaign_rewards"] = [dict(r) for r in self.campaign_rewards]
        snap["quotas_used"] = dict(self.quotas_used)
        return snap

    def vest_points(self, order_view: Mapping[str, Any]) -> None:
        """Earned points pending -> granted: the customer receives what was not cancelled."""
        pe = self.order.get("points_earned") or {}
        if pe.get("status") == "pending":
            self.points_balance += pe["points"] - self.points_cancelled_total
        self.order = copy.deepcopy(dict(order_view))

    def update_order(self, order_view: Mapping[str, Any]) -> None:
        self.order = copy.deepcopy(dict(order_view))

    # ---------------------------------------------------------------- helpers on a state
    def _all_goods_refunded(self, r: Mapping[str, int]) -> bool:
        return all(r[lid] == self.lines[lid].quantity for lid in self.goods_ids)

    def _refunded_paid(self, r: Mapping[str, int]) -> int:
        return sum(
            ref_part(self.paid[lid], r[lid], self.lines[lid].quantity) for lid in self.goods_ids
        )

    def _campaign_lines(self, campaign: Mapping[str, Any]) -> list[str]:
        if campaign.get("lines"):
            return [lid for lid in self.line_order if lid in campaign["lines"]]
        if campaign["kind"] == "threshold_discount":
            own: set[str] = set()
            for adj in self.adjustments.values():
                src = adj["source"]
                if src["type"] == "campaign" and src["id"] == campaign["id"]:
                    own.update(adj["lines"])
            return [lid for lid in self.line_order if lid in own]
        return list(self.goods_ids)

    def _measure(self, campaign: Mapping[str, Any]) -> str:
        if "measure" in campaign:
            return str(campaign["measure"])
        if campaign["kind"] in ("order_cashback", "cumulative_cashback"):
            return "paid"
        return "list"

    def _kept_basket(self, campaign: Mapping[str, Any], r: Mapping[str, int]) -> int:
        total = 0
        measure = self._measure(campaign)
        for lid in self._campaign_lines(campaign):
            line = self.lines[lid]
            kept = line.quantity - r[lid]
            if measure == "list":
                total += line.unit_price * kept
            else:
                total += self.paid[lid] - ref_part(self.paid[lid], r[lid], line.quantity)
        return total

    def _failed(self, campaign_id: str, r: Mapping[str, int]) -> bool:
        campaign = self.campaigns[campaign_id]
        threshold: int = campaign["threshold"]
        return self._kept_basket(campaign, r) < threshold

    def _loss_terms(self, r: Mapping[str, int]) -> dict[tuple[str, str], int]:
        """Lost discounts on kept units and kept gifts' value, per adjustment / gift line."""
        terms: dict[tuple[str, str], int] = {}
        for adj in self.order.get("adjustments", []):
            src = adj["source"]
            if src["type"] != "campaign":
                continue
            campaign = self.campaigns.get(src["id"])
            if campaign is None or campaign["kind"] != "threshold_discount":
                continue
            if not self._failed(campaign["id"], r):
                continue
            lost = 0
            for lid, share in self.shares[adj["id"]].items():
                n = self.lines[lid].quantity
                lost += share - ref_part(share, r[lid], n)
            terms[("discount_clawback", adj["id"])] = lost
        for gid in self.gift_ids:
            gift = self.lines[gid]
            campaign = self.campaigns.get(gift.gift_of or "")
            if campaign is None or not self._failed(campaign["id"], r):
                continue
            terms[("kept_gift", gid)] = gift.declared_value * (gift.quantity - r[gid])
        return terms

    def _entitled(self, r: Mapping[str, int], shipping_refunded: bool, permanent: int) -> int:
        value = self._refunded_paid(r)
        if shipping_refunded:
            value += self.shipping_fee
        value -= sum(self._loss_terms(r).values())
        value -= permanent
        return value

    def _cum_order_level(self, total: int, r: Mapping[str, int]) -> int:
        """Cumulative share of an order-level quantity (earned points, growth), §2."""
        if self.gp == 0:
            return total if self._all_goods_refunded(r) else 0
        return frac_floor(Fraction(total) * Fraction(self._refunded_paid(r), self.gp))

    @staticmethod
    def _tier_reward(campaign: Mapping[str, Any], basket: int) -> int:
        best = 0
        for tier in campaign.get("tiers", []):
            if basket >= tier["threshold"]:
                best = max(best, tier["reward"])
        return best

    def _tier_name(self, growth: int) -> str | None:
        name: str | None = None
        best = -1
        for entry in self.tier_table:
            if growth >= entry["min_growth"] and entry["min_growth"] > best:
                best = entry["min_growth"]
                name = entry["name"]
        return name

    def _asset_back(
        self, valid_until: str | None, now: datetime
    ) -> str:  # "return" | "reissue" | "forfeit"
        if valid_until is None or now < parse_time(valid_until):
            return "return"
        return "reissue" if self.policy.expired_coupon == "reissue" else "forfeit"

    def _lines_all_gone(self, lines: Sequence[str], r: Mapping[str, int]) -> bool:
        return all(r[lid] == self.lines[lid].quantity for lid in lines)

    def _withheld(self, campaign: Mapping[str, Any], now: datetime) -> bool:
        ends = campaign.get("ends_at")
        if ends is not None and parse_time(ends) <= now:
            return True
        return bool(campaign.get("high_value")) and "frequent_refunder" in self.risk_flags

    # ---------------------------------------------------------------- validation
    def _validate(self, request: Mapping[str, Any]) -> dict[str, int]:
        if self.order.get("status") in ("unpaid", "cancelled"):
            raise ReferenceError_("order.not_refundable")
        if request.get("order_id") != self.order["id"]:
            raise ReferenceError_("request.order_mismatch")
        if not request.get("lines"):
            raise ReferenceError_("refund.empty_request")
        wanted: dict[str, int] = {}
        for item in request["lines"]:
            q = item.get("quantity")
            if not isinstance(q, int) or isinstance(q, bool) or q <= 0:
                raise ReferenceError_("refund.invalid_quantity")
            lid = item["line_id"]
            if lid in wanted:
                raise ReferenceError_("refund.duplicate_line")
            if lid not in self.lines:
                raise ReferenceError_("refund.unknown_line")
            remaining = self.lines[lid].quantity - self.refunded[lid]
            if remaining == 0:
                raise ReferenceError_("refund.units_exhausted")
            if q > remaining:
                raise ReferenceError_("refund.quantity_exceeds_remaining")
            wanted[lid] = q
        return wanted

    # ---------------------------------------------------------------- one step
    def step(self, request: Mapping[str, Any], now_text: str) -> StepResult:
        """Compute the plan of ``request`` and, when it is ready, apply it to the state."""
        assert not self.stopped, "the sequence stopped at a manual review"
        now = parse_time(now_text)
        pol = self.policy
        wanted = self._validate(request)
        r0 = dict(self.refunded)
        r1 = dict(r0)
        for lid, q in wanted.items():
            r1[lid] += q
        reason = str(request.get("reason", ""))
        merchant_fault = reason in pol.merchant_fault_reasons
        reasons = [*self.reasons, reason]

        units = {
            lid: {
                "quantity": q,
                "refunded_before": r0[lid],
                "refunded_after": r1[lid],
                "of": self.lines[lid].quantity,
                "paid": 0
                if self.lines[lid].is_gift
                else ref_part(self.paid[lid], r1[lid], self.lines[lid].quantity)
                - ref_part(self.paid[lid], r0[lid], self.lines[lid].quantity),
            }
            for lid, q in wanted.items()
        }

        # goods
        goods = self._refunded_paid(r1) - self._refunded_paid(r0)

        # lost discounts and kept gifts: deductions and give-backs by their change
        before_terms = self._loss_terms(r0)
        after_terms = self._loss_terms(r1)
        deductions: dict[tuple[str, str], int] = {}
        give_backs: dict[tuple[str, str], int] = {}
        for key in sorted(set(before_terms) | set(after_terms)):
            delta = after_terms.get(key, 0) - before_terms.get(key, 0)
            if delta > 0:
                deductions[key] = delta
            elif delta < 0:
                gb_kind = (
                    "discount_give_back" if key[0] == "discount_clawback" else "kept_gift_give_back"
                )
                give_backs[(gb_kind, key[1])] = -delta

        # shipping (§9)
        shipping = 0
        ship_now = self._all_goods_refunded(r1) and not self._all_goods_refunded(r0)
        if ship_now and not self.shipping_refunded:
            if pol.shipping_refund == "always":
                due = True
            elif pol.shipping_refund == "never":
                due = False
            else:
                due = self.order.get("status") == "paid" or any(
                    x in pol.merchant_fault_reasons for x in reasons
                )
            if due:
                shipping = self.shipping_fee
        shipping_refunded_after = self.shipping_refunded or shipping > 0

        # order cashback rewards (§7)
        reward_clawbacks: dict[str, int] = {}
        reward_cancels: dict[str, int] = {}
        new_reductions = dict(self.reward_reductions)
        for reward in self.order.get("rewards", []):
            campaign = self.campaigns.get(reward["campaign_id"])
            if campaign is None or campaign["kind"] != "order_cashback":
                continue
            target = self._tier_reward(campaign, self._kept_basket(campaign, r1))
            current = reward["amount"] - self.reward_reductions.get(reward["id"], 0)
            if current > target:
                cut = current - target
                new_reductions[reward["id"]] = self.reward_reductions.get(reward["id"], 0) + cut
                if reward["status"] == "granted":
                    reward_clawbacks[reward["id"]] = cut
                else:
                    reward_cancels[reward["id"]] = cut

        # cumulative cashback (§7)
        new_spend = dict(self.campaign_spend)
        spend_decrease: dict[str, int] = {}
        reward_cuts: dict[str, int] = {}  # customer reward id -> what this step takes off it
        for campaign in self.order.get("campaigns", []):
            if campaign["kind"] != "cumulative_cashback":
                continue
            cid = campaign["id"]
            step_paid = sum(
                ref_part(self.paid[lid], r1[lid], self.lines[lid].quantity)
                - ref_part(self.paid[lid], r0[lid], self.lines[lid].quantity)
                for lid in self._campaign_lines(campaign)
            )
            old = self.campaign_spend.get(cid, 0)
            new = max(0, old - step_paid)
            new_spend[cid] = new
            if old != new:
                spend_decrease[cid] = old - new
            if step_paid == 0:
                continue  # a step that takes nothing off the spend re-evaluates no reward
            # The customer keeps what the highest tier reached by the new spend pays; the rest of
            # what it holds goes back, highest-threshold reward first (SPEC §3.5).
            earned = max(
                [t["reward"] for t in campaign.get("tiers", []) if new >= t["threshold"]],
                default=0,
            )
            holding = [
                r
                for r in self.campaign_rewards
                if r["campaign_id"] == cid and r["status"] in ("granted", "pending")
            ]
            excess = sum(r["amount"] for r in holding) - earned
            for reward in sorted(holding, key=lambda r: (-r["threshold"], r["id"])):
                cut = min(reward["amount"], max(excess, 0))
                if cut == 0:
                    continue
                excess -= cut
                if reward["status"] == "granted":
                    reward_clawbacks[reward["id"]] = cut
                else:
                    reward_cancels[reward["id"]] = cut
                reward_cuts[reward["id"]] = cut
        for rid, amt in sorted(reward_clawbacks.items()):
            deductions[("reward_clawback", rid)] = amt

        # return label (§9)
        label = 0
        if (
            request.get("kind") == "return_and_refund"
            and request.get("return_method", "self_ship") in ("prepaid_label", "pickup")
            and not merchant_fault
        ):
            label = pol.return_label_cost
            if request.get("return_method") == "pickup" and pol.return_pickup_cost is not None:
                label = pol.return_pickup_cost
            if label:
                deductions[("return_label", "label")] = label

        # carry and the amount before the points shortfall
        entitled_before = self._entitled(r0, self.shipping_refunded, self.permanent)
        carry = entitled_before - self.moved
        ded_no_sf = sum(deductions.values())
        gb_total = sum(give_backs.values())
        t0 = goods + gb_total + shipping - ded_no_sf + carry

        # earned points due this step (§2, §5)
        pe = self.order.get("points_earned") or {"points": 0, "status": "granted"}
        earned = int(pe.get("points", 0))
        points_due = self._cum_order_level(earned, r1) - self._cum_order_level(earned, r0)
        points_pending = pe.get("status") == "pending"

        tender_out: dict[str, dict[str, int]] = {
            t["id"]: {"amount": 0, "points": 0} for t in self.tender_list
        }
        status = READY
        excess: int | None = None
        overpay = 0
        returned_points = 0
        shortfall = 0
        from_balance = 0
        cancelled = 0

        def points_outcome(returned: int) -> tuple[int, int, int]:
            """(from balance, shortfall, cancelled) for the earned points due."""
            if points_due == 0:
                return 0, 0, 0
            if points_pending:
                return 0, 0, points_due
            available = self.points_balance + returned
            if pol.points_shortfall == "allow_negative":
                return points_due, 0, 0
            covered = min(points_due, max(available, 0))
            return covered, points_due - covered, 0

        if t0 < 0:
            status = MANUAL
            from_balance, shortfall, cancelled = points_outcome(0)
            if shortfall:
                deductions[("points_shortfall", "points")] = shortfall * pol.mpp
            excess = -(t0 - shortfall * pol.mpp)
        else:
            rooms = [t["amount"] - self.tender_refunded[t["id"]] for t in self.tender_list]
            if sum(rooms) > 0:
                shares = ref_split(t0, rooms)
            else:
                assert t0 == 0, "nothing left to refund but the step moves money"
                shares = [0] * len(rooms)
            for share, room in zip(shares, rooms, strict=True):
                assert 0 <= share <= room
            # whole points for the points tender, leftovers to cash tenders in order
            amounts = list(shares)
            points_given = [0] * len(amounts)
            for i, t in enumerate(self.tender_list):
                if t["kind"] != "points":
                    continue
                whole = shares[i] // pol.mpp
                leftover = shares[i] - whole * pol.mpp
                cash_room = [
                    (rooms[j] - amounts[j]) if self.tender_list[j]["kind"] != "points" else 0
                    for j in range(len(amounts))
                ]
                if leftover and sum(cash_room) >= leftover:
                    rest = leftover
                    for j in range(len(amounts)):
                        take = min(rest, cash_room[j])
                        amounts[j] += take
                        rest -= take
                    assert rest == 0
                    points_given[i] = whole
                elif leftover:
                    points_given[i] = whole + 1
                    overpay += (whole + 1) * pol.mpp - shares[i]
                else:
                    points_given[i] = whole
                amounts[i] = points_given[i] * pol.mpp
            returned_points = sum(points_given)
            from_balance, shortfall, cancelled = points_outcome(returned_points)
            sf_amount = shortfall * pol.mpp
            if sf_amount:
                deductions[("points_shortfall", "points")] = sf_amount
                cash_idx = [i for i, t in enumerate(self.tender_list) if t["kind"] != "points"]
                cash_shares = [amounts[i] for i in cash_idx]
                if sum(cash_shares) < sf_amount:
                    status = MANUAL
                    excess = sf_amount - sum(cash_shares)
                else:
                    cuts = ref_split(sf_amount, cash_shares)
                    for i, cut in zip(cash_idx, cuts, strict=True):
                        assert 0 <= cut <= amounts[i]
                        amounts[i] -= cut
            if status == READY:
                for i, t in enumerate(self.tender_list):
                    tender_out[t["id"]] = {"amount": amounts[i], "points": points_given[i]}

        ded_total = sum(deductions.values())
        # plan-json.md: total = goods + give_backs + shipping - deductions + carry + rounding,
        # always the sum of the tenders' amounts; ``rounding`` is a points tender's round-up
        if status != READY:
            returned_points = 0
            overpay = 0
        due_now = goods + gb_total + shipping - ded_total + carry
        if status == READY:
            assert due_now >= 0
            total = due_now + overpay
        else:
            total = 0
        amount = {
            "goods": goods,
            "give_backs": gb_total,
            "shipping": shipping,
            "deductions": ded_total,
            "carry": carry,
            "rounding": overpay,
            "total": total,
        }

        result = StepResult(
            status=status,
            excess=excess,
            amount=amount,
            tenders=tender_out,
            deductions=deductions,
            give_backs=give_backs,
            units=units,
            points_redeemed_returned=returned_points,
            points_reverse_due=0 if points_pending else points_due,
            points_from_balance=from_balance,
            points_shortfall=shortfall,
            points_cancelled=cancelled,
            reward_clawbacks=reward_clawbacks,
            reward_cancels=reward_cancels,
            campaign_spend_decrease=spend_decrease,
            shipping_refunded=shipping > 0,
            overpay=overpay,
        )
        if status != READY:
            self.stopped = True
            return result

        # coupons and entitlements (§6)
        for adj in self.order.get("adjustments", []):
            src = adj["source"]
            if src["type"] not in ("coupon", "entitlement"):
                continue
            lines = list(adj["lines"])
            if not (self._lines_all_gone(lines, r1) and not self._lines_all_gone(lines, r0)):
                continue
            asset = (self.coupons if src["type"] == "coupon" else self.entitlements).get(
                src["id"], {}
            )
            outcome = self._asset_back(asset.get("valid_until"), now)
            self._record_asset(result, src["type"], src["id"], outcome, asset, now)
        for benefit in self.order.get("benefits", []):
            lines = list(benefit.get("lines") or self.goods_ids)
            if not (self._lines_all_gone(lines, r1) and not self._lines_all_gone(lines, r0)):
                continue
            asset = self.entitlements.get(benefit["id"], {})
            outcome = self._asset_back(asset.get("valid_until"), now)
            self._record_asset(result, "entitlement", benefit["id"], outcome, asset, now)

        # quotas and first purchase (§7)
        new_quotas = dict(self.quotas_used)
        for campaign in self.order.get("campaigns", []):
            has_quota = (
                "quota_per_customer" in campaign or campaign["kind"] == "participation_quota"
            )
            if not has_quota:
                continue
            lines = self._campaign_lines(campaign)
            if not (self._lines_all_gone(lines, r1) and not self._lines_all_gone(lines, r0)):
                continue
            if self._withheld(campaign, now):
                result.eligibility_withheld.append(campaign["id"])
            else:
                result.quota_released.append(campaign["id"])
                cid = campaign["id"]
                new_quotas[cid] = max(0, new_quotas.get(cid, 0) - 1)
        if ship_now:
            open_orders = [
                o for o in self.other_orders if o.get("paid") and not o.get("fully_refunded")
            ]
            for campaign in self.order.get("campaigns", []):
                if campaign["kind"] != "first_purchase" or open_orders:
                    continue
                if self._withheld(campaign, now):
                    result.eligibility_withheld.append(campaign["id"])
                else:
                    result.first_purchase_restored = True

        # growth (§8)
        growth_total = int(self.order.get("growth_value", 0))
        growth_due = self._cum_order_level(growth_total, r1) - self._cum_order_level(
            growth_total, r0
        )
        growth_rev = min(growth_due, max(self.growth, 0))
        old_tier = self._tier_name(self.growth)
        new_growth = self.growth - growth_rev
        new_tier = self._tier_name(new_growth)
        result.growth_reversed = growth_rev
        if old_tier != new_tier:
            result.tier_change = (old_tier, new_tier)

        # ---- apply
        self.refunded = r1
        for tid, out in tender_out.items():
            self.tender_refunded[tid] += out["amount"]
            assert self.tender_refunded[tid] <= next(
                t["amount"] for t in self.tender_list if t["id"] == tid
            )
        moved_now = sum(out["amount"] for out in tender_out.values())
        self.moved += moved_now
        self.reward_reductions = new_reductions
        self.permanent += sum(reward_clawbacks.values()) + shortfall * pol.mpp + label
        self.shipping_refunded = shipping_refunded_after
        self.reasons = reasons
        self.campaign_spend = new_spend
        # a reward's amount in the snapshot is what it still holds; one emptied is gone
        for reward in self.campaign_rewards:
            reward["amount"] -= reward_cuts.get(reward["id"], 0)
        self.campaign_rewards = [r for r in self.campaign_rewards if r["amount"] > 0]
        self.quotas_used = new_quotas
        self.points_balance = self.points_balance + returned_points - from_balance
        self.points_cancelled_total += cancelled
        self.points_reversed_total += from_balance
        self.growth = new_growth
        self.growth_reversed_total += growth_rev
        self.steps += 1

        # self-check: the step moved what the customer is now entitled to, plus any round-up
        entitled_after = self._entitled(r1, self.shipping_refunded, self.permanent)
        assert total - overpay == entitled_after - (self.moved - moved_now)
        assert moved_now == total
        return result

    def _record_asset(
        self,
        result: StepResult,
        kind: str,
        asset_id: str,
        outcome: str,
        asset: Mapping[str, Any],
        now: datetime,
    ) -> None:
        if outcome == "reissue":
            until = now + timedelta(days=self.policy.coupon_reissue_days)
            result.reissued_valid_until[asset_id] = until
        if kind == "coupon":
            if outcome == "return":
                result.coupons_returned.append(asset_id)
            elif outcome == "reissue":
                result.coupons_reissued[asset_id] = int(asset.get("value", 0))
            else:
                result.coupons_forfeited.append(asset_id)
        elif outcome == "return":
            result.entitlements_reactivated.append(asset_id)
        elif outcome == "reissue":
            result.entitlements_reissued.append(asset_id)
        else:
            result.entitlements_forfeited.append(asset_id)

    # ---------------------------------------------------------------- position check inputs
    def kept_terms(self) -> dict[str, int]:
        """The pieces of SPEC §3's check for the current state (reference computed)."""
        r = self.refunded
        kept_paid = sum(
            self.paid[lid] - ref_part(self.paid[lid], r[lid], self.lines[lid].quantity)
            for lid in self.goods_ids
        )
        loss = self._loss_terms(r)
        return {
            "kept_paid": kept_paid,
            "lost_discounts": sum(v for k, v in loss.items() if k[0] == "discount_clawback"),
            "kept_gifts": sum(v for k, v in loss.items() if k[0] == "kept_gift"),
            "shipping_kept": 0 if self.shipping_refunded else self.shipping_fee,
        }

    def all_units_back(self) -> bool:
        return all(self.refunded[lid] == self.lines[lid].quantity for lid in self.line_order)

    def entitled_now(self) -> int:
        return self._entitled(self.refunded, self.shipping_refunded, self.permanent)


@dataclass
class RefReversal:
    """The reference's 极速退款 reversal: the model as it ends, the debt, and the two steps."""

    model: ReferenceModel
    debt: int
    full: StepResult
    accepted: StepResult | None


def ref_reversal(
    before: ReferenceModel, request: Mapping[str, Any], accepted: Mapping[str, int], now: str
) -> RefReversal:
    """SPEC §4's express reversal, the obvious way (docs/case-process.md, "极速退款"): the model
    that refunded only the accepted units of the step, except that the money the whole step paid
    to cash tenders stays paid (the gateway refunded it), and redeemed points the whole step
    returned beyond the accepted-only step are taken back only as far as the balance holds them.
    A reversal never pays: where the accepted-only step would move more (a reward it keeps
    deducts less), the tenders keep what the step paid. The debt is what the step's tenders
    hold beyond what the accepted-only step moves, never below 0."""
    full_model = copy.deepcopy(before)
    full = full_model.step(request, now)
    lines = [
        {"line_id": x["line_id"], "quantity": min(accepted.get(x["line_id"], 0), x["quantity"])}
        for x in request["lines"]
    ]
    lines = [x for x in lines if x["quantity"] > 0]
    model = copy.deepcopy(before)
    step = model.step({**request, "lines": lines}, now) if lines else None
    mpp = before.policy.mpp
    for t in before.tender_list:
        tid = t["id"]
        paid = full.tenders[tid]["amount"]
        got = step.tenders[tid]["amount"] if step else 0
        if t["kind"] != "points":
            model.tender_refunded[tid] += paid - got
            continue
        owed = full.tenders[tid]["points"] - (step.tenders[tid]["points"] if step else 0)
        if owed <= 0:
            # the accepted-only step returns as many points or more: a reversal pays nothing,
            # the tender and the balance stay as the whole step left them (the next step's
            # carry gives the rest)
            model.tender_refunded[tid] += paid - got
            model.points_balance += owed
            continue
        # the balance after the whole step, with the earned points it took back given back
        earned_back = full.points_from_balance - (step.points_from_balance if step else 0)
        holds = max(full_model.points_balance + max(earned_back, 0), 0)
        taken = min(owed, holds)
        if taken < owed:
            model.tender_refunded[tid] += (owed - taken) * mpp
            model.points_balance += owed - taken
    held = sum(model.tender_refunded.values()) - sum(before.tender_refunded.values())
    debt = held - (step.amount["total"] if step else 0)
    return RefReversal(model=model, debt=max(debt, 0), full=full, accepted=step)


def ref_debt_settlements(owed: int, parts: list[int]) -> tuple[int, list[bool]]:
    """An express-refund debt settled in ``parts`` (recovered or written off), each taken only
    if it is 1 to what is still owed: what is owed at the end, and which parts were taken. Kept
    as a ledger of what went, not as a running balance, so it does not share debt_after's
    arithmetic."""
    taken: list[int] = []
    accepted = []
    for part in parts:
        ok = part > 0 and sum(taken) + part <= owed
        if ok:
            taken.append(part)
        accepted.append(ok)
    return owed - sum(taken), accepted
