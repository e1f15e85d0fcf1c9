"""SPEC §3's worked examples as input documents: used by the tests, `make demo` and examples/."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

NOW = "2026-11-24T12:00:00+08:00"
CUSTOMER = "c-100"


def order(order_id: str, lines: list[Json], tenders_amount: int, **extra: Any) -> Json:
    doc: Json = {
        "id": order_id,
        "customer_id": CUSTOMER,
        "currency": "CNY",
        "status": "delivered",
        "paid_at": "2026-11-01T10:00:00+08:00",
        "lines": lines,
        "tenders": [
            {
                "id": "T1",
                "kind": "external",
                "method": "alipay",
                "amount": tenders_amount,
                "gateway_txn_id": f"ali-{order_id}",
            }
        ],
    }
    doc.update(extra)
    return doc


def line(line_id: str, price: int, **extra: Any) -> Json:
    return {
        "id": line_id,
        "sku": f"SKU-{line_id}",
        "title": f"Item {line_id}",
        "merchant_id": "m-1",
        "quantity": 1,
        "unit_price": price,
        **extra,
    }


def request(order_id: str, *line_ids: str, reason: str = "changed_mind") -> Json:
    return {
        "order_id": order_id,
        "reason": reason,
        "lines": [{"line_id": lid, "quantity": 1} for lid in line_ids],
    }


def snapshot(**extra: Any) -> Json:
    return {"customer_id": CUSTOMER, **extra}


POINTS = order(
    "o-points", [line("A", 50000)], 50000, points_earned={"points": 500, "status": "granted"}
)
POINTS_SNAPSHOT = snapshot(points_balance=120)

COUPON = order(
    "o-coupon",
    [line("A", 30000)],
    27000,
    adjustments=[
        {
            "id": "ADJ-C",
            "kind": "coupon",
            "amount": 3000,
            "lines": ["A"],
            "source": {"type": "coupon", "id": "CP-30"},
        }
    ],
)
COUPON_SNAPSHOT = snapshot(
    coupons=[{"id": "CP-30", "value": 3000, "valid_until": "2026-11-10T00:00:00+08:00"}]
)

THRESHOLD = order(
    "o-500-100",
    [line("X", 40000), line("Y", 20000)],
    50000,
    adjustments=[
        {
            "id": "ADJ-T",
            "kind": "threshold_discount",
            "amount": 10000,
            "lines": ["X", "Y"],
            "source": {"type": "campaign", "id": "MJ-500-100"},
        }
    ],
    campaigns=[
        {"id": "MJ-500-100", "kind": "threshold_discount", "measure": "list", "threshold": 50000}
    ],
)

CASHBACK = order(
    "o-1000-200",
    [line("A", 100000), line("B", 20000)],
    120000,
    campaigns=[
        {
            "id": "MF-1000-200",
            "kind": "order_cashback",
            "measure": "paid",
            "tiers": [{"threshold": 100000, "reward": 20000}],
        }
    ],
    rewards=[{"id": "RW-1", "campaign_id": "MF-1000-200", "amount": 20000, "status": "granted"}],
)

TIERED = order(
    "o-tiers",
    [line("A", 120000), line("B", 100000)],
    220000,
    campaigns=[
        {
            "id": "MF-TIERS",
            "kind": "order_cashback",
            "measure": "paid",
            "tiers": [
                {"threshold": 100000, "reward": 20000},
                {"threshold": 200000, "reward": 50000},
            ],
        }
    ],
    rewards=[{"id": "RW-2", "campaign_id": "MF-TIERS", "amount": 50000, "status": "granted"}],
)

GIFT = order(
    "o-gift",
    [
        line("X", 40000),
        line("Y", 20000),
        line("G", 0, gift_of="MZ-500", declared_value=3000, title="Gift scarf"),
    ],
    60000,
    campaigns=[
        {"id": "MZ-500", "kind": "gift_with_purchase", "measure": "list", "threshold": 50000}
    ],
)
