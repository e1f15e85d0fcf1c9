"""Builders for the JSON documents of docs/plan-json.md (order, snapshot, request).

Each builder fills in sensible defaults so that a scenario states only what it is about. The
documents are plain dicts exactly as the CLI would read them from files; nothing here knows how
the engine computes a plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Json = dict[str, Any]

ORDER_ID = "o-1"
CUSTOMER_ID = "c-1"
PAID_AT = "2026-11-01T10:00:00+08:00"
NOW = "2026-11-20T10:00:00+08:00"
EXPIRED = "2026-11-10T00:00:00+08:00"  # a validity that has passed at NOW
VALID = "2027-01-01T00:00:00+08:00"  # a validity that has not passed at NOW
ENDED = "2026-11-15T00:00:00+08:00"  # a campaign end that has passed at NOW

DEFAULT_TIERS: tuple[Json, ...] = (
    {"name": "regular", "min_growth": 0},
    {"name": "silver", "min_growth": 1000},
    {"name": "gold", "min_growth": 5000},
)


# --- order lines -------------------------------------------------------------------------------


def line(line_id: str, unit_price: int, quantity: int = 1, *, merchant_id: str = "m-1") -> Json:
    """A goods line: `quantity` units of list price `unit_price`."""
    return {
        "id": line_id,
        "sku": f"SKU-{line_id}",
        "title": f"Item {line_id}",
        "merchant_id": merchant_id,
        "quantity": quantity,
        "unit_price": unit_price,
    }


def gift(line_id: str, campaign_id: str, declared_value: int, quantity: int = 1) -> Json:
    """A free gift line of a gift_with_purchase campaign (unit price 0, per-unit value)."""
    return {
        "id": line_id,
        "sku": f"SKU-{line_id}",
        "title": f"Gift {line_id}",
        "merchant_id": "m-1",
        "quantity": quantity,
        "unit_price": 0,
        "gift_of": campaign_id,
        "declared_value": declared_value,
    }


# --- adjustments -------------------------------------------------------------------------------


def adjustment(
    adj_id: str,
    kind: str,
    amount: int,
    lines: Iterable[str],
    *,
    source_type: str,
    source_id: str,
) -> Json:
    return {
        "id": adj_id,
        "kind": kind,
        "amount": amount,
        "lines": list(lines),
        "source": {"type": source_type, "id": source_id},
    }


def coupon(adj_id: str, amount: int, lines: Iterable[str], coupon_id: str = "CP-1") -> Json:
    return adjustment(adj_id, "coupon", amount, lines, source_type="coupon", source_id=coupon_id)


def threshold_discount(adj_id: str, amount: int, lines: Iterable[str], campaign_id: str) -> Json:
    return adjustment(
        adj_id, "threshold_discount", amount, lines, source_type="campaign", source_id=campaign_id
    )


def entitlement_discount(
    adj_id: str,
    amount: int,
    lines: Iterable[str],
    entitlement_id: str,
    kind: str = "exclusive_discount",
) -> Json:
    return adjustment(
        adj_id, kind, amount, lines, source_type="entitlement", source_id=entitlement_id
    )


# --- tenders -----------------------------------------------------------------------------------


def card(tender_id: str, amount: int, method: str = "card") -> Json:
    return {
        "id": tender_id,
        "kind": "external",
        "method": method,
        "amount": amount,
        "gateway_txn_id": f"txn-{tender_id}",
    }


def wallet(tender_id: str, amount: int) -> Json:
    return {"id": tender_id, "kind": "wallet", "amount": amount}


def gift_card(tender_id: str, amount: int) -> Json:
    return {"id": tender_id, "kind": "gift_card", "amount": amount}


def points_tender(tender_id: str, points: int, mpp: int = 1) -> Json:
    """Redeemed points; `mpp` is the policy's minor_units_per_point used for `amount`."""
    return {"id": tender_id, "kind": "points", "amount": points * mpp, "points": points}


# --- campaigns, rewards, benefits --------------------------------------------------------------


def campaign(campaign_id: str, kind: str, **fields: Any) -> Json:
    return {"id": campaign_id, "kind": kind, **fields}


def tiers(*pairs: tuple[int, int]) -> list[Json]:
    return [{"threshold": threshold, "reward": reward} for threshold, reward in pairs]


def reward(reward_id: str, campaign_id: str, amount: int, status: str = "granted") -> Json:
    return {"id": reward_id, "campaign_id": campaign_id, "amount": amount, "status": status}


def benefit(benefit_id: str, kind: str, lines: Iterable[str] = ()) -> Json:
    return {"id": benefit_id, "kind": kind, "lines": list(lines)}


# --- order -------------------------------------------------------------------------------------


def goods_paid(lines: Iterable[Json], adjustments: Iterable[Json]) -> int:
    """List subtotal of the goods lines minus every adjustment: what the goods cost in total."""
    listed = sum(ln["unit_price"] * ln["quantity"] for ln in lines if "gift_of" not in ln)
    return listed - sum(adj["amount"] for adj in adjustments)


def order(
    *,
    lines: Iterable[Json],
    adjustments: Iterable[Json] = (),
    tenders: Iterable[Json] | None = None,
    shipping_fee: int = 0,
    status: str = "delivered",
    points_earned: int = 0,
    points_status: str = "granted",
    growth_value: int = 0,
    campaigns: Iterable[Json] = (),
    rewards: Iterable[Json] = (),
    benefits: Iterable[Json] = (),
    order_id: str = ORDER_ID,
    currency: str = "CNY",
) -> Json:
    """An order; without `tenders` it was paid in full by one card tender `T1`."""
    line_list = list(lines)
    adj_list = list(adjustments)
    if tenders is None:
        tenders = [card("T1", goods_paid(line_list, adj_list) + shipping_fee)]
    return {
        "id": order_id,
        "customer_id": CUSTOMER_ID,
        "currency": currency,
        "status": status,
        "paid_at": PAID_AT,
        "lines": line_list,
        "adjustments": adj_list,
        "tenders": list(tenders),
        "shipping_fee": shipping_fee,
        "points_earned": {"points": points_earned, "status": points_status},
        "growth_value": growth_value,
        "campaigns": list(campaigns),
        "rewards": list(rewards),
        "benefits": list(benefits),
    }


# --- snapshot ----------------------------------------------------------------------------------


def snap_coupon(coupon_id: str, value: int, valid_until: str = VALID) -> Json:
    return {"id": coupon_id, "value": value, "valid_until": valid_until}


def snap_entitlement(ent_id: str, kind: str, valid_until: str | None = None) -> Json:
    ent: Json = {"id": ent_id, "kind": kind}
    if valid_until is not None:
        ent["valid_until"] = valid_until
    return ent


def snap_reward(
    reward_id: str, campaign_id: str, threshold: int, amount: int, status: str = "granted"
) -> Json:
    return {
        "id": reward_id,
        "campaign_id": campaign_id,
        "threshold": threshold,
        "amount": amount,
        "status": status,
    }


def other_order(order_id: str, *, paid: bool = True, fully_refunded: bool = False) -> Json:
    return {"id": order_id, "paid": paid, "fully_refunded": fully_refunded}


def snapshot(
    *,
    points_balance: int = 0,
    wallet_balance: int = 0,
    growth_value: int = 0,
    tier_table: Iterable[Json] = DEFAULT_TIERS,
    coupons: Iterable[Json] = (),
    entitlements: Iterable[Json] = (),
    campaign_spend: Mapping[str, int] | None = None,
    campaign_rewards: Iterable[Json] = (),
    quotas_used: Mapping[str, int] | None = None,
    other_orders: Iterable[Json] = (),
    risk_flags: Iterable[str] = (),
) -> Json:
    return {
        "customer_id": CUSTOMER_ID,
        "locale": "zh-CN",
        "points_balance": points_balance,
        "wallet_balance": wallet_balance,
        "growth_value": growth_value,
        "tier_table": [dict(t) for t in tier_table],
        "coupons": list(coupons),
        "entitlements": list(entitlements),
        "campaign_spend": dict(campaign_spend or {}),
        "campaign_rewards": list(campaign_rewards),
        "quotas_used": dict(quotas_used or {}),
        "other_orders": list(other_orders),
        "risk_flags": list(risk_flags),
    }


# --- request -----------------------------------------------------------------------------------


def request(
    *items: tuple[str, int],
    reason: str = "changed_mind",
    kind: str = "refund_only",
    return_method: str | None = None,
    order_id: str = ORDER_ID,
) -> Json:
    """A request for `(line_id, quantity)` items; `return_method` only for return_and_refund."""
    req: Json = {
        "order_id": order_id,
        "lines": [{"line_id": line_id, "quantity": qty} for line_id, qty in items],
        "reason": reason,
        "kind": kind,
    }
    if return_method is not None:
        req["return_method"] = return_method
    return req


def ret(*items: tuple[str, int], reason: str = "changed_mind", method: str = "self_ship") -> Json:
    """A return_and_refund request."""
    return request(*items, reason=reason, kind="return_and_refund", return_method=method)
