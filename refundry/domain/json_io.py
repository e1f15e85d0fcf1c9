"""Reading the plan's input documents (docs/plan-json.md); the plan as JSON is plan_doc.py's.

Parsing is strict: unknown fields, wrong types, naive datetimes and non-integer amounts are
refused with an ``InvalidInput`` that names the field (``order.lines[2].unit_price``), so a typo
never silently changes a refund. The plan document and its canonical text are
refundry/domain/plan_doc.py's (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from refundry.domain.customer import (
    CampaignReward,
    CustomerSnapshot,
    Entitlement,
    OtherOrder,
    TierLevel,
)
from refundry.domain.errors import CurrencyMismatch, InvalidInput
from refundry.domain.fingerprint import fingerprint
from refundry.domain.order import (
    Adjustment,
    AdjustmentSource,
    Benefit,
    Campaign,
    CampaignKind,
    Line,
    Order,
    OrderStatus,
    PointsEarned,
    Reward,
    Tender,
    TenderKind,
    Tier,
)
from refundry.domain.plan import plan_refund
from refundry.domain.plan_doc import (
    PlanDoc,
    dumps_plan,
    dumps_plan_compact,
    hash_and_text,
    plan_hash,
    plan_to_dict,
)
from refundry.domain.policy import REASONS, Policy, policy_from_mapping
from refundry.domain.reader import MAX_INT32, MAX_INTEGER, Reader
from refundry.domain.request import PriorRefund, RefundRequest, RequestedUnits

__all__ = [
    "dumps_plan",
    "dumps_plan_compact",
    "hash_and_text",
    "parse_history",
    "parse_now",
    "parse_order",
    "parse_policy",
    "parse_request",
    "parse_snapshot",
    "parse_stored_order",
    "plan_from_json",
    "plan_hash",
    "plan_to_dict",
]

_ADJ_KINDS = (
    "coupon",
    "threshold_discount",
    "member_discount",
    "exclusive_discount",
    "first_purchase",
    "flash_sale",
    "other",
)
_SOURCE_TYPES = ("coupon", "campaign", "entitlement")
# Iterating an Enum is slow (a list and a property call per member): once, not per document.
_ORDER_STATUSES = tuple(s.value for s in OrderStatus)
_TENDER_KINDS = tuple(k.value for k in TenderKind)
_CAMPAIGN_KINDS = tuple(k.value for k in CampaignKind)
_CASHBACK = (CampaignKind.ORDER_CASHBACK, CampaignKind.CUMULATIVE_CASHBACK)


def parse_now(value: Any) -> datetime:
    moment: datetime = Reader({"now": value}, "", "request.invalid").moment("now")
    return moment


def parse_policy(data: dict[str, Any] | None) -> Policy:
    if data is None:
        return Policy()
    if not isinstance(data, dict):
        raise InvalidInput("must be an object", code="policy.invalid", field="policy")
    return policy_from_mapping(data)


def parse_order(data: Any, *, policy: Policy | None = None) -> Order:
    mpp = (policy or Policy()).minor_units_per_point
    r = Reader(data, "order", "order.invalid")
    r.only(
        "id",
        "customer_id",
        "currency",
        "status",
        "paid_at",
        "delivered_at",
        "lines",
        "adjustments",
        "tenders",
        "shipping_fee",
        "points_earned",
        "growth_value",
        "campaigns",
        "rewards",
        "benefits",
    )
    currency = r.text("currency")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        r.fail("currency", "must be an ISO 4217 code such as CNY")
    lines = tuple(_line(x) for x in r.items("lines", min_items=1))
    adjustments = tuple(_adjustment(x) for x in r.items("adjustments", required=False))
    tenders = tuple(_tender(x, currency) for x in r.items("tenders", min_items=1))
    _check_totals(r, lines, tenders)
    points = PointsEarned()
    if r.has("points_earned"):
        p = r.child("points_earned")
        p.only("points", "status")
        points = PointsEarned(
            points=p.integer("points"), status=p.choice("status", ("granted", "pending"), "granted")
        )
    return Order(
        id=r.text("id"),
        customer_id=r.text("customer_id"),
        currency=currency,
        status=OrderStatus(r.choice("status", _ORDER_STATUSES)),
        lines=lines,
        adjustments=adjustments,
        tenders=tenders,
        shipping_fee=r.integer("shipping_fee", 0),
        points_earned=points,
        growth_value=r.integer("growth_value", 0),
        campaigns=tuple(_known_campaign(x) for x in r.items("campaigns", required=False)),
        rewards=tuple(_reward(x) for x in r.items("rewards", required=False)),
        benefits=tuple(_benefit(x) for x in r.items("benefits", required=False)),
        paid_at=r.moment("paid_at", required=False),
        delivered_at=r.moment("delivered_at", required=False),
        minor_units_per_point=mpp,
    )


def _check_totals(r: Reader, lines: tuple[Line, ...], tenders: tuple[Tender, ...]) -> None:
    """Totals the store keeps in one column stay in its range, as each field does: the order's
    goods units (INTEGER), a line's list total and the order's total paid (which bound every
    amount a refund moves) and the points redeemed (BIGINT)."""
    if sum(ln.quantity for ln in lines if ln.gift_of is None) > MAX_INT32:
        r.fail("lines", f"the goods units must be at most {MAX_INT32} in all")
    for i, ln in enumerate(lines):
        if ln.quantity * max(ln.unit_price, ln.declared_value) > MAX_INTEGER:
            r.fail(f"lines[{i}]", f"quantity × price must be at most {MAX_INTEGER}")
    if sum(t.amount for t in tenders) > MAX_INTEGER:
        r.fail("tenders", f"the tenders must be at most {MAX_INTEGER} in all")
    if sum(t.points for t in tenders) > MAX_INTEGER:
        r.fail("tenders", f"the points redeemed must be at most {MAX_INTEGER} in all")


def _moment(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def parse_stored_order(data: dict[str, Any], *, policy: Policy | None = None) -> Order:
    """An order document that ``parse_order`` accepted when it was ingested, read back from the
    store without validating it again: the same ``Order`` (tests/domain/test_properties.py
    checks it on every worked example and on random orders), in about 60% of the time — the
    apply path reads one for every refund of a new order. Never for a document from outside:
    that is ``parse_order``'s job. A missing or null optional field takes the same default
    here as there."""
    mpp = (policy or Policy()).minor_units_per_point
    points = data.get("points_earned")
    return Order(
        id=data["id"],
        customer_id=data["customer_id"],
        currency=data["currency"],
        status=OrderStatus(data["status"]),
        lines=tuple(
            Line(
                id=x["id"],
                sku=x["sku"],
                title=x.get("title") or "",
                merchant_id=x.get("merchant_id") or "",
                quantity=x["quantity"],
                unit_price=x["unit_price"],
                gift_of=x.get("gift_of"),
                declared_value=x.get("declared_value") or 0,
            )
            for x in data["lines"]
        ),
        adjustments=tuple(
            Adjustment(
                id=x["id"],
                kind=x["kind"],
                amount=x["amount"],
                lines=tuple(x["lines"]),
                source=AdjustmentSource(type=x["source"]["type"], id=x["source"]["id"]),
            )
            for x in data.get("adjustments") or ()
        ),
        tenders=tuple(
            Tender(
                id=x["id"],
                kind=TenderKind(x["kind"]),
                amount=x["amount"],
                points=x.get("points") or 0,
                method=x.get("method"),
                gateway_txn_id=x.get("gateway_txn_id"),
            )
            for x in data["tenders"]
        ),
        shipping_fee=data.get("shipping_fee") or 0,
        points_earned=(
            PointsEarned()
            if points is None
            else PointsEarned(points=points["points"], status=points.get("status") or "granted")
        ),
        growth_value=data.get("growth_value") or 0,
        campaigns=tuple(_stored_campaign(x) for x in data.get("campaigns") or ()),
        rewards=tuple(
            Reward(id=x["id"], campaign_id=x["campaign_id"], amount=x["amount"], status=x["status"])
            for x in data.get("rewards") or ()
        ),
        benefits=tuple(
            Benefit(id=x["id"], kind=x["kind"], lines=tuple(x.get("lines") or ()))
            for x in data.get("benefits") or ()
        ),
        paid_at=_moment(data.get("paid_at")),
        delivered_at=_moment(data.get("delivered_at")),
        minor_units_per_point=mpp,
    )


def _stored_campaign(x: dict[str, Any]) -> Campaign:
    kind = CampaignKind(x["kind"])
    return Campaign(
        id=x["id"],
        kind=kind,
        measure=x.get("measure") or ("paid" if kind in _CASHBACK else "list"),
        threshold=x.get("threshold") or 0,
        tiers=tuple(
            Tier(threshold=t["threshold"], reward=t["reward"]) for t in x.get("tiers") or ()
        ),
        lines=tuple(x.get("lines") or ()),
        quota_per_customer=x.get("quota_per_customer"),
        high_value=x.get("high_value") or False,
        starts_at=_moment(x.get("starts_at")),
        ends_at=_moment(x.get("ends_at")),
    )


def _line(r: Reader) -> Line:
    r.only(
        "id", "sku", "title", "merchant_id", "quantity", "unit_price", "gift_of", "declared_value"
    )
    gift_of = r.opt_text("gift_of")
    unit_price = r.integer("unit_price")
    if gift_of is not None and unit_price:
        r.fail("unit_price", "a gift line has unit_price 0 (its worth is declared_value)")
    return Line(
        id=r.text("id"),
        sku=r.text("sku", max_length=100),
        title=r.text("title", "", max_length=200),
        merchant_id=r.text("merchant_id", ""),
        quantity=r.integer("quantity", minimum=1, maximum=MAX_INT32),
        unit_price=unit_price,
        gift_of=gift_of,
        declared_value=r.integer("declared_value", 0),
    )


def _adjustment(r: Reader) -> Adjustment:
    r.only("id", "kind", "amount", "lines", "source")
    s = r.child("source")
    s.only("type", "id")
    ids = r.str_list("lines", min_items=1)
    return Adjustment(
        id=r.text("id"),
        kind=r.choice("kind", _ADJ_KINDS),
        amount=r.integer("amount"),
        lines=tuple(ids),
        source=AdjustmentSource(type=s.choice("type", _SOURCE_TYPES), id=s.text("id")),
    )


def _tender(r: Reader, currency: str) -> Tender:
    r.only("id", "kind", "amount", "points", "method", "gateway_txn_id", "currency")
    if r.has("currency") and r.text("currency") != currency:
        raise CurrencyMismatch(
            f"tender is in {r.text('currency')}, the order in {currency}",
            field=r.path("currency"),
        )
    kind = TenderKind(r.choice("kind", _TENDER_KINDS))
    if kind == TenderKind.EXTERNAL and not r.has("gateway_txn_id"):
        r.fail("gateway_txn_id", "an external tender needs the gateway's transaction id")
    if kind == TenderKind.POINTS and not r.has("points"):
        r.fail("points", "a points tender says how many points were redeemed")
    return Tender(
        id=r.text("id"),
        kind=kind,
        amount=r.integer("amount"),
        points=r.integer("points", 0),
        method=r.opt_text("method", max_length=32),
        gateway_txn_id=r.opt_text("gateway_txn_id", max_length=100),
    )


# Campaign definitions read before, by their text: the orders of one import repeat the shop's
# few campaigns, each read in full once (a fifth of reading an order).
_CAMPAIGNS: dict[str, Campaign] = {}
_CAMPAIGNS_KEPT = 1024


def _known_campaign(r: Reader) -> Campaign:
    """``_campaign(r)``, from memory when the very same definition was read before (its
    ``repr``: 1, 1.0, True, NaN and null all differ there)."""
    key = repr(r.document)
    found = _CAMPAIGNS.get(key)
    if found is None:
        found = _campaign(r)  # raises on a bad definition: nothing kept
        if len(_CAMPAIGNS) >= _CAMPAIGNS_KEPT:
            _CAMPAIGNS.clear()
        _CAMPAIGNS[key] = found
    return found


def _campaign(r: Reader) -> Campaign:
    r.only(
        "id",
        "kind",
        "measure",
        "threshold",
        "tiers",
        "lines",
        "quota_per_customer",
        "high_value",
        "starts_at",
        "ends_at",
    )
    kind = CampaignKind(r.choice("kind", _CAMPAIGN_KINDS))
    default_measure = "paid" if kind in _CASHBACK else "list"
    tiers: list[Tier] = []
    for t in r.items("tiers", required=kind in _CASHBACK, min_items=1 if kind in _CASHBACK else 0):
        t.only("threshold", "reward")
        tiers.append(Tier(threshold=t.integer("threshold"), reward=t.integer("reward")))
    needs_threshold = kind in (CampaignKind.THRESHOLD_DISCOUNT, CampaignKind.GIFT_WITH_PURCHASE)
    quota = (
        r.integer("quota_per_customer", minimum=1, maximum=MAX_INT32)
        if r.has("quota_per_customer")
        else None
    )
    return Campaign(
        id=r.text("id"),
        kind=kind,
        measure=r.choice("measure", ("list", "paid"), default_measure),
        threshold=r.integer("threshold") if needs_threshold else r.integer("threshold", 0),
        tiers=tuple(tiers),
        lines=tuple(r.str_list("lines", required=False)),
        quota_per_customer=quota,
        high_value=r.flag("high_value", False),
        starts_at=r.moment("starts_at", required=False),
        ends_at=r.moment("ends_at", required=False),
    )


def _reward(r: Reader) -> Reward:
    r.only("id", "campaign_id", "amount", "status")
    return Reward(
        id=r.text("id"),
        campaign_id=r.text("campaign_id"),
        amount=r.integer("amount"),
        status=r.choice("status", ("granted", "pending", "cancelled", "clawed_back")),
    )


def _benefit(r: Reader) -> Benefit:
    r.only("id", "kind", "lines")
    return Benefit(
        id=r.text("id"), kind=r.text("kind"), lines=tuple(r.str_list("lines", required=False))
    )


def parse_snapshot(data: Any) -> CustomerSnapshot:
    r = Reader(data, "snapshot", "snapshot.invalid")
    r.only(
        "customer_id",
        "locale",
        "points_balance",
        "wallet_balance",
        "growth_value",
        "tier_table",
        "coupons",
        "entitlements",
        "campaign_spend",
        "campaign_rewards",
        "quotas_used",
        "other_orders",
        "risk_flags",
    )
    coupons = {}
    for c in r.items("coupons", required=False):
        c.only("id", "value", "valid_until", "kind")
        coupons[c.text("id")] = Entitlement(
            id=c.text("id"),
            kind=c.text("kind", "coupon", max_length=32),
            value=c.integer("value", 0),
            valid_until=c.moment("valid_until", required=False),
        )
    entitlements = {}
    for e in r.items("entitlements", required=False):
        e.only("id", "kind", "value", "valid_until")
        entitlements[e.text("id")] = Entitlement(
            id=e.text("id"),
            kind=e.text("kind", "entitlement", max_length=32),
            value=e.integer("value", 0),
            valid_until=e.moment("valid_until", required=False),
        )
    rewards = []
    for w in r.items("campaign_rewards", required=False):
        w.only("id", "campaign_id", "threshold", "amount", "status")
        rewards.append(
            CampaignReward(
                id=w.text("id"),
                campaign_id=w.text("campaign_id"),
                threshold=w.integer("threshold"),
                amount=w.integer("amount"),
                status=w.choice("status", ("granted", "pending", "cancelled", "clawed_back")),
            )
        )
    tiers = []
    for t in r.items("tier_table", required=False):
        t.only("name", "min_growth")
        tiers.append(TierLevel(name=t.text("name"), min_growth=t.integer("min_growth")))
    others = []
    for o in r.items("other_orders", required=False):
        o.only("id", "paid", "fully_refunded")
        others.append(
            OtherOrder(
                id=o.text("id"),
                paid=o.flag("paid", True),
                fully_refunded=o.flag("fully_refunded", False),
            )
        )
    return CustomerSnapshot(
        customer_id=r.text("customer_id"),
        locale=r.choice("locale", ("zh-CN", "en"), "zh-CN"),
        points_balance=r.integer("points_balance", 0, minimum=None),
        wallet_balance=r.integer("wallet_balance", 0),
        growth_value=r.integer("growth_value", 0),
        tier_table=tuple(tiers),
        coupons=coupons,
        entitlements=entitlements,
        campaign_spend=r.int_map("campaign_spend"),
        campaign_rewards=tuple(rewards),
        quotas_used=r.int_map("quotas_used", maximum=MAX_INT32),
        other_orders=tuple(others),
        risk_flags=frozenset(r.str_list("risk_flags", required=False)),
    )


def parse_request(data: Any) -> RefundRequest:
    r = Reader(data, "request", "request.invalid")
    r.only("order_id", "lines", "reason", "kind", "return_method")
    units = []
    for u in r.items("lines"):
        u.only("line_id", "quantity")
        units.append(RequestedUnits(line_id=u.text("line_id"), quantity=u.raw("quantity")))
    kind = r.choice("kind", ("refund_only", "return_and_refund"), "return_and_refund")
    default_method = "none" if kind == "refund_only" else "self_ship"
    return RefundRequest(
        order_id=r.text("order_id"),
        lines=tuple(units),
        reason=r.choice("reason", REASONS),
        kind=kind,
        return_method=r.choice(
            "return_method", ("self_ship", "prepaid_label", "pickup", "none"), default_method
        ),
    )


def parse_history(data: Any) -> list[PriorRefund]:
    if not isinstance(data, list):
        raise InvalidInput(
            "must be a list of earlier plans", code="history.invalid", field="history"
        )
    prior = []
    for i, item in enumerate(data):
        r = Reader(item, f"history[{i}]", "history.invalid")
        if r.has("status") and r.raw("status") != "ready":
            r.fail("status", "a plan awaiting manual review was never applied")
        req = r.child("request")
        units: dict[str, int] = {}
        for u in req.items("lines"):
            units[u.text("line_id")] = units.get(u.text("line_id"), 0) + u.integer(
                "quantity", minimum=1
            )
        moved = {t.text("tender_id"): t.integer("amount") for t in r.items("tenders")}
        path = 0
        for d in r.items("deductions", required=False):
            kind = d.text("kind")
            if kind in ("reward_clawback", "points_shortfall", "return_label"):
                path += d.integer("amount")
            elif kind in ("waiver", "wallet_debit"):
                # an agent's concession on a held plan: a negative deduction
                path += d.integer("amount", minimum=None)
        reductions: dict[str, int] = {}
        shipping = False
        for e in r.items("effects", required=False):
            kind = e.text("type")
            if kind in ("reward_clawback", "reward_cancel"):
                rid = e.text("reward_id")
                reductions[rid] = reductions.get(rid, 0) + e.integer("amount")
            elif kind == "shipping_refund":
                shipping = True
        prior.append(
            PriorRefund(
                reason=req.text("reason"),
                units=units,
                moved=moved,
                path_deductions=path,
                reward_reductions=reductions,
                shipping_refunded=shipping,
            )
        )
    return prior


def plan_from_json(
    *,
    order: Any,
    snapshot: Any,
    request: Any,
    now: Any,
    history: Sequence[Any] = (),
    policy: dict[str, Any] | None = None,
) -> PlanDoc:
    """Parse the five documents, compute the plan and return it as a JSON-ready dict."""
    pol = parse_policy(policy)
    o = parse_order(order, policy=pol)
    c = parse_snapshot(snapshot)
    q = parse_request(request)
    h = parse_history(list(history))
    t = parse_now(now)
    digest = fingerprint(order=o, history=h, customer=c, request=q, policy=pol, now=t)
    return plan_to_dict(
        plan_refund(order=o, history=h, customer=c, request=q, policy=pol, now=t, input_hash=digest)
    )
