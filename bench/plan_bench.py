"""Plans per second for a 20-line order with 5 adjustments and 3 tenders, beside json.loads.

Prints, from one run on one core:
  * plan: plan_refund + input fingerprint on an already-parsed order (what a preview costs when
    the order is loaded once), for a partial refund of 3 lines;
  * plan+io: the same from JSON text to plan dict (parse all documents, plan, to dict);
  * baseline: json.loads of the order's JSON text;
and the ratios. The baseline is interleaved with the timed plans: each of ``--rounds`` rounds
times the baseline, then each plan, for a slice of ``--seconds`` / rounds, and a round's ratio is
taken within it, so load that comes and goes hits both sides of a ratio alike. Each figure is
printed as min / median / max over the rounds.
Usage: python bench/plan_bench.py [--seconds 2] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from refundry.domain.fingerprint import fingerprint
from refundry.domain.json_io import (
    parse_history,
    parse_now,
    parse_order,
    parse_policy,
    parse_request,
    parse_snapshot,
    plan_from_json,
    plan_to_dict,
)
from refundry.domain.plan import plan_refund

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fsync_rate import fsync_rate

NOW = "2026-11-24T12:00:00+08:00"


def build_order() -> dict[str, Any]:
    lines = [
        {
            "id": f"L{i:02d}",
            "sku": f"SKU-{i:04d}",
            "title": f"Item number {i}",
            "merchant_id": f"m-{i % 3}",
            "quantity": 1 + i % 3,
            "unit_price": 1990 + 1000 * i,
        }
        for i in range(1, 21)
    ]
    ids = [ln["id"] for ln in lines]
    adjustments = [
        {
            "id": "A-MJ",
            "kind": "threshold_discount",
            "amount": 10000,
            "lines": ids,
            "source": {"type": "campaign", "id": "MJ-1000-100"},
        },
        {
            "id": "A-CP",
            "kind": "coupon",
            "amount": 3000,
            "lines": ids[:8],
            "source": {"type": "coupon", "id": "CP-30"},
        },
        {
            "id": "A-MB",
            "kind": "member_discount",
            "amount": 2500,
            "lines": ids[5:15],
            "source": {"type": "entitlement", "id": "E-MEMBER"},
        },
        {
            "id": "A-EX",
            "kind": "exclusive_discount",
            "amount": 1800,
            "lines": ids[10:],
            "source": {"type": "entitlement", "id": "E-BRAND"},
        },
        {
            "id": "A-FS",
            "kind": "flash_sale",
            "amount": 999,
            "lines": ids[:2],
            "source": {"type": "campaign", "id": "FLASH"},
        },
    ]
    list_total = sum(ln["quantity"] * ln["unit_price"] for ln in lines)
    paid = list_total - sum(a["amount"] for a in adjustments) + 800
    return {
        "id": "o-bench",
        "customer_id": "c-bench",
        "currency": "CNY",
        "status": "delivered",
        "paid_at": "2026-11-01T10:00:00+08:00",
        "lines": lines,
        "adjustments": adjustments,
        "tenders": [
            {
                "id": "T-CARD",
                "kind": "external",
                "method": "card",
                "amount": paid - 20000 - 5000,
                "gateway_txn_id": "ch_bench",
            },
            {"id": "T-WALLET", "kind": "wallet", "amount": 20000},
            {"id": "T-POINTS", "kind": "points", "amount": 5000, "points": 5000},
        ],
        "shipping_fee": 800,
        "points_earned": {"points": 3000, "status": "granted"},
        "growth_value": 3000,
        "campaigns": [
            {"id": "MJ-1000-100", "kind": "threshold_discount", "threshold": 100000},
            {
                "id": "FLASH",
                "kind": "participation_quota",
                "quota_per_customer": 1,
                "lines": ids[:2],
            },
            {
                "id": "MF",
                "kind": "order_cashback",
                "tiers": [{"threshold": 100000, "reward": 10000}],
            },
        ],
        "rewards": [{"id": "RW", "campaign_id": "MF", "amount": 10000, "status": "granted"}],
    }


SNAPSHOT = {
    "customer_id": "c-bench",
    "points_balance": 800,
    "growth_value": 6000,
    "tier_table": [{"name": "regular", "min_growth": 0}, {"name": "gold", "min_growth": 5000}],
    "coupons": [{"id": "CP-30", "value": 3000, "valid_until": "2026-11-10T00:00:00+08:00"}],
    "entitlements": [
        {"id": "E-MEMBER", "kind": "member_day"},
        {"id": "E-BRAND", "kind": "exclusive_discount"},
    ],
    "quotas_used": {"FLASH": 1},
}
REQUEST = {
    "order_id": "o-bench",
    "reason": "changed_mind",
    "lines": [
        {"line_id": "L01", "quantity": 1},
        {"line_id": "L07", "quantity": 2},
        {"line_id": "L12", "quantity": 1},
    ],
}


def rate(fn: Callable[[], object], seconds: float) -> float:
    for _ in range(50):
        fn()
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def spread(values: list[float], fmt: str) -> str:
    """min / median / max of ``values``, each with ``fmt``."""
    picks = (min(values), statistics.median(values), max(values))
    return " / ".join(format(v, fmt) for v in picks)


def interleaved(
    baseline: Callable[[], object],
    timed: list[tuple[str, Callable[[], object]]],
    *,
    seconds: float,
    rounds: int,
) -> tuple[list[float], dict[str, list[float]], dict[str, list[float]]]:
    """Per round: the baseline's rate, then each timed function's rate and its cost (baseline
    rate / its rate) within that round."""
    slice_ = seconds / rounds
    bases: list[float] = []
    rates: dict[str, list[float]] = {name: [] for name, _ in timed}
    costs: dict[str, list[float]] = {name: [] for name, _ in timed}
    for _ in range(rounds):
        base = rate(baseline, slice_)
        bases.append(base)
        for name, fn in timed:
            value = rate(fn, slice_)
            rates[name].append(value)
            costs[name].append(base / value)
    return bases, rates, costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per figure, over all rounds")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    order_doc = build_order()
    order_text = json.dumps(order_doc)
    policy = parse_policy(None)
    order = parse_order(order_doc, policy=policy)
    customer = parse_snapshot(SNAPSHOT)
    request = parse_request(REQUEST)
    history = parse_history([])
    now = parse_now(NOW)

    def plan_only() -> object:
        digest = fingerprint(
            order=order, history=history, customer=customer, request=request, policy=policy, now=now
        )
        return plan_refund(
            order=order,
            history=history,
            customer=customer,
            request=request,
            policy=policy,
            now=now,
            input_hash=digest,
        )

    def plan_dict() -> object:
        return plan_to_dict(plan_only())  # type: ignore[arg-type]

    texts = (order_text, json.dumps(SNAPSHOT), json.dumps(REQUEST))

    def plan_io() -> object:
        o, s, r = (json.loads(t) for t in texts)
        return plan_from_json(order=o, snapshot=s, request=r, now=NOW)

    def baseline() -> object:
        return json.loads(order_text)

    sample = plan_from_json(order=order_doc, snapshot=SNAPSHOT, request=REQUEST, now=NOW)
    assert sample["status"] == "ready", sample["status"]
    bases, rates, costs = interleaved(
        baseline,
        [
            ("plan (parsed order)", plan_only),
            ("plan + to dict", plan_dict),
            ("plan + io (JSON in, dict out)", plan_io),
        ],
        seconds=args.seconds,
        rounds=args.rounds,
    )
    print(f"disk fsync rate: {fsync_rate():,.0f}/s (plans touch no disk; stated for comparison)")
    print(f"order: 20 lines, 5 adjustments, 3 tenders, {len(order_text)} bytes of JSON")
    print(f"{args.rounds} rounds, the baseline timed in each; min / median / max over rounds")
    print(f"{'baseline json.loads(order)':32s} {spread(bases, ',.0f')} /s")
    for name in rates:
        print(
            f"{name:32s} {spread(rates[name], ',.0f')} /s   "
            f"cost = {spread(costs[name], '.2f')} × json.loads"
        )


if __name__ == "__main__":
    main()
