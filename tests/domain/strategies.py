"""Hypothesis strategies: random valid orders, customer snapshots, policies and refund sequences.

Everything produced follows docs/plan-json.md: orders whose discounts never push a line below
zero, campaigns the order qualified for when it was bought, tenders that sum to goods paid +
shipping (a points tender in whole points of ``minor_units_per_point``), and sequences of
requests that together give back every unit (goods and gifts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from .reference_model import apportion, ref_split

JSON = dict[str, Any]

PAID_AT = datetime.fromisoformat("2026-11-01T10:00:00+08:00")
REASONS = ["quality_issue", "wrong_item", "not_received", "merchant_breach", "changed_mind"]
STATUSES = ["paid", "shipped", "delivered", "completed"]


def iso(t: datetime) -> str:
    return t.isoformat()


ZONES = [
    timezone(timedelta(hours=8)),
    timezone(timedelta(hours=8)),
    UTC,
    timezone(timedelta(hours=-5)),
]


def in_some_zone(draw: st.DrawFn, t: datetime) -> str:
    """The instant ``t`` written with a random UTC offset: times compare as instants."""
    return t.astimezone(draw(st.sampled_from(ZONES))).isoformat()


@dataclass
class Step:
    request: JSON
    now: str
    vest_points: bool = False  # earned points pending -> granted before this step
    grant_rewards: list[str] = field(default_factory=list)  # order rewards pending -> granted


@dataclass
class Scenario:
    order: JSON
    snapshot: JSON
    policy: JSON
    steps: list[Step]

    def describe(self) -> JSON:
        return {
            "order": self.order,
            "snapshot": self.snapshot,
            "policy": self.policy,
            "steps": [
                {
                    "request": s.request,
                    "now": s.now,
                    "vest_points": s.vest_points,
                    "grant_rewards": s.grant_rewards,
                }
                for s in self.steps
            ],
        }


def _line(i: int, price: int, qty: int) -> JSON:
    return {
        "id": f"L{i}",
        "sku": f"SKU-{i}",
        "title": f"Item {i}",
        "merchant_id": f"m-{i % 2 + 1}",
        "quantity": qty,
        "unit_price": price,
    }


prices = st.one_of(
    st.integers(0, 200000),
    st.sampled_from([0, 1, 3, 99, 100, 999, 10000, 33333, 50000, 100000, 200000]),
)


def _fit_amount(want: int, lines: list[str], subtotal: dict[str, int], rem: dict[str, int]) -> int:
    """The largest amount <= want whose apportionment keeps every line >= 0."""
    weight = sum(subtotal[lid] for lid in lines)
    cap = min((rem[lid] * weight) // subtotal[lid] for lid in lines if subtotal[lid] > 0)
    amount = min(want, cap)
    while amount > 0:
        parts = ref_split(amount, [subtotal[lid] for lid in lines])
        if all(p <= rem[lid] for p, lid in zip(parts, lines, strict=True)):
            return amount
        amount -= 1
    return 0


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_goods = draw(st.integers(1, 6))
    lines = [_line(i + 1, draw(prices), draw(st.integers(1, 4))) for i in range(n_goods)]
    goods_ids = [x["id"] for x in lines]
    subtotal = {x["id"]: x["unit_price"] * x["quantity"] for x in lines}
    pos = {lid: i for i, lid in enumerate(goods_ids)}
    now0 = PAID_AT + timedelta(days=draw(st.integers(0, 20)), hours=draw(st.integers(0, 23)))

    mpp = draw(st.sampled_from([1, 10, 10, 100]))
    policy: JSON = {}
    if mpp != 1 or draw(st.booleans()):
        policy["minor_units_per_point"] = mpp
    if draw(st.booleans()):
        policy["points_shortfall"] = draw(st.sampled_from(["deduct_from_refund", "allow_negative"]))
    if draw(st.integers(0, 3)) == 0:
        policy["coupon_reissue_days"] = draw(st.integers(1, 30))
    if draw(st.booleans()):
        policy["expired_coupon"] = draw(st.sampled_from(["reissue", "forfeit"]))
    if draw(st.booleans()):
        policy["shipping_refund"] = draw(
            st.sampled_from(["unshipped_or_merchant_fault", "always", "never"])
        )
    if draw(st.integers(0, 4)) == 0:
        policy["merchant_fault_reasons"] = sorted(
            draw(st.sets(st.sampled_from(REASONS), max_size=3))
        )
    if draw(st.booleans()):
        policy["return_label_cost"] = draw(st.sampled_from([0, 500, 1000, 1500]))
    if draw(st.booleans()):
        policy["return_pickup_cost"] = draw(st.sampled_from([0, 800, 1500]))

    campaigns: list[JSON] = []
    adjustments: list[JSON] = []
    coupons: list[JSON] = []
    entitlements: list[JSON] = []
    quotas_used: dict[str, int] = {}
    td_campaigns: list[JSON] = []  # threshold_discount campaigns, thresholds set later
    rem = dict(subtotal)

    def valid_until() -> str | None:
        offset = draw(st.integers(-10 * 24, 10 * 24))
        return in_some_zone(draw, now0 + timedelta(hours=offset))

    def ends_at() -> str | None:
        if draw(st.integers(0, 3)) == 0:
            return in_some_zone(draw, now0 + timedelta(days=draw(st.integers(-5, 30))))
        return None

    priced = [lid for lid in goods_ids if subtotal[lid] > 0]
    n_adj = draw(st.integers(0, 4)) if priced else 0
    for k in range(n_adj):
        source = draw(
            st.sampled_from(
                ["coupon", "coupon", "threshold", "threshold", "entitlement", "flash", "first"]
            )
        )
        if source == "first" and any(c["kind"] == "first_purchase" for c in campaigns):
            source = "coupon"
        chosen = draw(st.lists(st.sampled_from(goods_ids), min_size=1, unique=True))
        if not any(subtotal[lid] > 0 for lid in chosen):
            chosen.append(draw(st.sampled_from(priced)))
        ordered = sorted(chosen, key=lambda lid: pos[lid])
        want = draw(
            st.one_of(
                st.integers(1, max(1, sum(rem[lid] for lid in ordered))),
                st.integers(1, 3000),
            )
        )
        amount = _fit_amount(want, ordered, subtotal, rem)
        zero_ok = draw(st.integers(0, 9)) == 0  # a zero discount is valid and moves nothing
        if amount <= 0 and not zero_ok:
            continue
        if zero_ok:
            amount = 0
        parts = ref_split(amount, [subtotal[lid] for lid in ordered])
        for lid, part in zip(ordered, parts, strict=True):
            rem[lid] -= part
        aid = f"A{k + 1}"
        adj: JSON = {"id": aid, "amount": amount, "lines": chosen}
        if source == "coupon":
            cid = f"CP-{k + 1}"
            adj["kind"] = draw(st.sampled_from(["coupon", "coupon", "threshold_discount", "other"]))
            adj["source"] = {"type": "coupon", "id": cid}
            coupons.append({"id": cid, "value": amount, "valid_until": valid_until()})
        elif source == "threshold" and td_campaigns and draw(st.integers(0, 3)) == 0:
            # a second discount line of a campaign that already has one
            shared: JSON = draw(st.sampled_from(td_campaigns))
            adj["kind"] = "threshold_discount"
            adj["source"] = {"type": "campaign", "id": shared["id"]}
            if "lines" in shared:
                shared["lines"] = sorted(
                    set(shared["lines"]) | set(chosen), key=lambda lid: pos[lid]
                )
        elif source == "threshold":
            cmp_id = f"cmp-td-{k + 1}"
            adj["kind"] = draw(
                st.sampled_from(["threshold_discount", "threshold_discount", "other"])
            )
            adj["source"] = {"type": "campaign", "id": cmp_id}
            campaign: JSON = {"id": cmp_id, "kind": "threshold_discount"}
            if draw(st.integers(0, 3)) == 0:
                campaign["measure"] = draw(st.sampled_from(["list", "paid"]))
            if draw(st.integers(0, 3)) == 0:
                extra = draw(st.lists(st.sampled_from(goods_ids), unique=True))
                campaign["lines"] = sorted(set(chosen) | set(extra), key=lambda lid: pos[lid])
            td_campaigns.append(campaign)
            campaigns.append(campaign)
        elif source == "entitlement":
            eid = f"E-{k + 1}"
            adj["kind"] = draw(st.sampled_from(["exclusive_discount", "member_discount"]))
            adj["source"] = {"type": "entitlement", "id": eid}
            ent: JSON = {"id": eid, "kind": adj["kind"]}
            vu = valid_until() if draw(st.booleans()) else None
            if vu is not None:
                ent["valid_until"] = vu
            entitlements.append(ent)
        elif source == "flash":
            cmp_id = f"cmp-flash-{k + 1}"
            adj["kind"] = "flash_sale"
            adj["source"] = {"type": "campaign", "id": cmp_id}
            flash: JSON = {
                "id": cmp_id,
                "kind": "participation_quota",
                "quota_per_customer": 1,
                "lines": ordered,
            }
            if draw(st.booleans()):
                flash["high_value"] = True
            ea = ends_at()
            if ea is not None:
                flash["ends_at"] = ea
            campaigns.append(flash)
            quotas_used[cmp_id] = draw(st.integers(1, 2))
        else:
            adj["kind"] = "first_purchase"
            adj["source"] = {"type": "campaign", "id": "cmp-first"}
            first: JSON = {"id": "cmp-first", "kind": "first_purchase"}
            ea = ends_at()
            if ea is not None:
                first["ends_at"] = ea
            campaigns.append(first)
        adjustments.append(adj)

    order: JSON = {
        "id": "o-1",
        "customer_id": "c-1",
        "currency": "CNY",
        "status": draw(st.sampled_from(STATUSES)),
        "paid_at": iso(PAID_AT),
        "lines": lines,
        "adjustments": adjustments,
        "tenders": [],
        "shipping_fee": 0,
        "points_earned": {"points": 0, "status": "granted"},
        "growth_value": 0,
        "campaigns": campaigns,
        "rewards": [],
        "benefits": [],
    }
    _, paid = apportion(order)
    gp = sum(paid.values())

    def basket(lines_: list[str], measure: str) -> int:
        if measure == "list":
            return sum(subtotal[lid] for lid in lines_)
        return sum(paid[lid] for lid in lines_)

    def threshold_for(value: int) -> int:
        return draw(
            st.one_of(
                st.integers(0, value),
                st.just(value),
                st.integers(max(0, value - 2000), value),
            )
        )

    for campaign in td_campaigns:
        own: set[str] = set()
        for adj in adjustments:
            if adj["source"] == {"type": "campaign", "id": campaign["id"]}:
                own.update(adj["lines"])
        clines = campaign.get("lines") or [lid for lid in goods_ids if lid in own]
        campaign["threshold"] = threshold_for(basket(clines, campaign.get("measure", "list")))

    # gift with purchase
    if draw(st.integers(0, 2)) == 0:
        gift_cmp: JSON = {"id": "cmp-gift", "kind": "gift_with_purchase"}
        if draw(st.integers(0, 3)) == 0:
            gift_cmp["measure"] = draw(st.sampled_from(["list", "paid"]))
        glines = goods_ids
        if draw(st.booleans()):
            glines = sorted(
                draw(st.lists(st.sampled_from(goods_ids), min_size=1, unique=True)),
                key=lambda lid: pos[lid],
            )
            gift_cmp["lines"] = glines
        gift_cmp["threshold"] = threshold_for(basket(glines, gift_cmp.get("measure", "list")))
        campaigns.append(gift_cmp)
        for j in range(draw(st.integers(1, 2))):
            lines.append(
                {
                    "id": f"G{j + 1}",
                    "sku": f"GIFT-{j + 1}",
                    "title": f"Gift {j + 1}",
                    "merchant_id": "m-1",
                    "quantity": draw(st.integers(1, 2)),
                    "unit_price": 0,
                    "gift_of": "cmp-gift",
                    "declared_value": draw(st.integers(0, 5000)),
                }
            )

    # order cashback: up to two campaigns, each with the reward the bought basket reached
    rewards: list[JSON] = []
    n_cashback = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
    for c in range(1, n_cashback + 1):
        cmp_id = f"cmp-cb-{c}"
        measure = draw(st.sampled_from(["paid", "paid", "list"]))
        cb: JSON = {"id": cmp_id, "kind": "order_cashback"}
        if measure != "paid" or draw(st.booleans()):
            cb["measure"] = measure
        cb_lines = goods_ids
        if draw(st.integers(0, 2)) == 0:
            cb_lines = sorted(
                draw(st.lists(st.sampled_from(goods_ids), min_size=1, unique=True)),
                key=lambda lid: pos[lid],
            )
            cb["lines"] = cb_lines
        value = basket(cb_lines, measure)
        t1 = threshold_for(value)
        tiers = [{"threshold": t1, "reward": draw(st.integers(1, 30000))}]
        if draw(st.booleans()):
            t2 = t1 + draw(st.integers(1, 100000))
            tiers.append(
                {"threshold": t2, "reward": tiers[0]["reward"] + draw(st.integers(1, 30000))}
            )
        if draw(st.booleans()):
            tiers.reverse()
        cb["tiers"] = tiers
        if draw(st.booleans()):
            cb["quota_per_customer"] = 1
            quotas_used[cmp_id] = 1
        if draw(st.booleans()):
            cb["high_value"] = True
        ea = ends_at()
        if ea is not None:
            cb["ends_at"] = ea
        campaigns.append(cb)
        reached = max((t["reward"] for t in tiers if value >= t["threshold"]), default=0)
        if reached > 0:
            rewards.append(
                {
                    "id": f"R{c}",
                    "campaign_id": cmp_id,
                    "amount": reached,
                    "status": draw(st.sampled_from(["granted", "pending"])),
                }
            )
    order["rewards"] = rewards

    # cumulative cashback (customer-level spend and rewards)
    campaign_spend: dict[str, int] = {}
    campaign_rewards: list[JSON] = []
    if draw(st.integers(0, 2)) == 0:
        cum: JSON = {"id": "cmp-cum", "kind": "cumulative_cashback"}
        if draw(st.booleans()):
            cum["measure"] = "paid"
        clines = goods_ids
        if draw(st.booleans()):
            clines = sorted(
                draw(st.lists(st.sampled_from(goods_ids), min_size=1, unique=True)),
                key=lambda lid: pos[lid],
            )
            cum["lines"] = clines
        spend = basket(clines, "paid") + draw(st.integers(0, 300000))
        thresholds = sorted(draw(st.lists(st.integers(0, spend), min_size=1, max_size=3)))
        cum["tiers"] = [
            {"threshold": t, "reward": 1000 * (i + 1)} for i, t in enumerate(thresholds)
        ]
        campaigns.append(cum)
        campaign_spend["cmp-cum"] = spend
        # How the shop recorded what the customer earned (SPEC §3.5 allows either): one grant
        # for the highest tier reached, one grant per tier (each the tier's increment), or any
        # subset of tier grants; a grant may already be reduced by another order's refund.
        recording = draw(st.sampled_from(["one", "per_tier", "subset"]))
        grants: list[tuple[int, int]] = []  # (threshold, amount)
        if recording == "one":
            grants = [(thresholds[-1], 1000 * len(thresholds))]
        elif recording == "per_tier":
            grants = [(t, 1000) for t in thresholds]
        else:
            grants = [(t, 1000 * (i + 1)) for i, t in enumerate(thresholds) if draw(st.booleans())]
        for i, (t, amount) in enumerate(grants):
            campaign_rewards.append(
                {
                    "id": f"R-cum-{i + 1}",
                    "campaign_id": "cmp-cum",
                    "threshold": t,
                    "amount": amount - draw(st.sampled_from([0, 0, 0, 1, amount // 2])),
                    "status": draw(st.sampled_from(["granted", "pending"])),
                }
            )

    # other quota campaign on some lines
    if draw(st.integers(0, 3)) == 0:
        qlines = sorted(
            draw(st.lists(st.sampled_from(goods_ids), min_size=1, unique=True)),
            key=lambda lid: pos[lid],
        )
        pq: JSON = {"id": "cmp-limit", "kind": "participation_quota", "lines": qlines}
        if draw(st.booleans()):
            pq["quota_per_customer"] = 1
        campaigns.append(pq)
        quotas_used["cmp-limit"] = 1

    # benefits
    benefits: list[JSON] = []
    if draw(st.integers(0, 2)) == 0:
        blines: list[str] = []
        if draw(st.booleans()):
            blines = sorted(
                draw(st.lists(st.sampled_from(goods_ids), min_size=1, unique=True)),
                key=lambda lid: pos[lid],
            )
        benefits.append({"id": "E-FS", "kind": "free_shipping_pass", "lines": blines})
        ent = {"id": "E-FS", "kind": "free_shipping_pass"}
        if draw(st.booleans()):
            ent["valid_until"] = str(valid_until())
        entitlements.append(ent)
    order["benefits"] = benefits

    # shipping, points, growth
    shipping_fee = draw(st.sampled_from([0, 0, 500, 800, 1000, 1234]))
    if gp + shipping_fee == 0:
        shipping_fee = draw(st.integers(1, 2000))
    order["shipping_fee"] = shipping_fee
    order["points_earned"] = {
        "points": draw(st.one_of(st.just(0), st.integers(0, gp // 100 + 10), st.integers(0, 5000))),
        "status": draw(st.sampled_from(["granted", "pending"])),
    }
    order["growth_value"] = draw(st.integers(0, gp // 100 + 10))

    # tenders
    total = gp + shipping_fee
    cash_kinds = draw(
        st.lists(st.sampled_from(["external", "wallet", "gift_card"]), min_size=0, max_size=2)
    )
    use_points = draw(st.booleans()) or not cash_kinds
    tenders: list[JSON] = []
    points = 0
    if use_points:
        if not cash_kinds:
            if total % mpp != 0:
                cash_kinds = ["external"]
                points = draw(st.integers(0, (total - 1) // mpp))
            else:
                points = total // mpp
        elif draw(st.booleans()):
            # points-heavy: the cash tenders hold only a few minor units, so a points share
            # that is not a whole number of points often finds no cash room
            points = max(0, (total - len(cash_kinds) - draw(st.integers(0, 2 * mpp))) // mpp)
        else:
            points = draw(st.integers(0, max(0, (total - len(cash_kinds)) // mpp)))
        if points == 0 and cash_kinds:
            use_points = False
        if not cash_kinds and points == 0:
            cash_kinds = ["external"]
    cash_total = total - points * mpp
    if cash_kinds and cash_total < len(cash_kinds):
        cash_kinds = cash_kinds[:1]
    if cash_kinds:
        if len(cash_kinds) == 1:
            cash_parts = [cash_total]
        else:
            cut = draw(st.integers(1, cash_total - 1))
            cash_parts = [cut, cash_total - cut]
        for j, (kind, amt) in enumerate(zip(cash_kinds, cash_parts, strict=True)):
            tender: JSON = {"id": f"T{j + 1}", "kind": kind, "amount": amt}
            if kind == "external":
                tender["method"] = draw(st.sampled_from(["card", "alipay", "wechat_pay"]))
                tender["gateway_txn_id"] = f"txn-{j + 1}"
            tenders.append(tender)
    if use_points and points > 0:
        ptender = {"id": "TP", "kind": "points", "amount": points * mpp, "points": points}
        tenders.insert(draw(st.integers(0, len(tenders))), ptender)
    assert sum(t["amount"] for t in tenders) == total
    assert all(t["amount"] > 0 for t in tenders)
    if draw(st.integers(0, 9)) == 0:  # an empty gift card: weight 0, never gets anything
        tenders.insert(
            draw(st.integers(0, len(tenders))), {"id": "T0", "kind": "gift_card", "amount": 0}
        )
    order["tenders"] = tenders

    # the customer
    snapshot: JSON = {
        "customer_id": "c-1",
        "locale": draw(st.sampled_from(["zh-CN", "en"])),
        "points_balance": draw(st.one_of(st.just(0), st.integers(0, 500), st.integers(0, 100000))),
        "wallet_balance": draw(st.integers(0, 10000)),
        "growth_value": draw(st.integers(0, 8000)),
        "tier_table": [
            {"name": "regular", "min_growth": 0},
            {"name": "silver", "min_growth": 1000},
            {"name": "gold", "min_growth": 5000},
        ],
        "coupons": coupons,
        "entitlements": entitlements,
        "campaign_spend": campaign_spend,
        "campaign_rewards": campaign_rewards,
        "quotas_used": quotas_used,
        "other_orders": draw(
            st.sampled_from(
                [
                    [],
                    [{"id": "o-0", "paid": True, "fully_refunded": True}],
                    [{"id": "o-0", "paid": True, "fully_refunded": False}],
                ]
            )
        ),
        "risk_flags": draw(st.sampled_from([[], ["frequent_refunder"]])),
    }

    steps = draw(refund_sequence(order, now0))
    return Scenario(order=order, snapshot=snapshot, policy=policy, steps=steps)


@st.composite
def refund_sequence(draw: st.DrawFn, order: JSON, now0: datetime) -> list[Step]:
    """Requests that together give back every unit of ``order`` (goods and gifts)."""
    remaining = {x["id"]: x["quantity"] for x in order["lines"]}
    points_pending = order["points_earned"]["status"] == "pending"
    pending_rewards = [r["id"] for r in order["rewards"] if r["status"] == "pending"]
    now = now0
    steps: list[Step] = []
    while any(remaining.values()):
        open_lines = [lid for lid, q in remaining.items() if q > 0]
        chosen = draw(st.lists(st.sampled_from(open_lines), min_size=1, unique=True))
        items = []
        for lid in chosen:
            q = draw(st.integers(1, remaining[lid]))
            remaining[lid] -= q
            items.append({"line_id": lid, "quantity": q})
        kind = draw(st.sampled_from(["refund_only", "return_and_refund"]))
        request: JSON = {
            "order_id": order["id"],
            "lines": items,
            "reason": draw(st.sampled_from(REASONS)),
            "kind": kind,
        }
        if kind == "return_and_refund" and draw(st.integers(0, 3)) > 0:
            request["return_method"] = draw(
                st.sampled_from(["self_ship", "prepaid_label", "pickup"])
            )
        step = Step(request=request, now=in_some_zone(draw, now))
        if steps and points_pending and draw(st.integers(0, 3)) == 0:
            step.vest_points = True
            points_pending = False
        if steps and pending_rewards and draw(st.integers(0, 3)) == 0:
            step.grant_rewards = list(pending_rewards)
            pending_rewards = []
        steps.append(step)
        now = now + timedelta(hours=draw(st.integers(0, 72)))
    return steps
