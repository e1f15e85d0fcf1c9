"""Anchor the reference model on the worked examples of SPEC §1-§3 and refund-rules.md."""

from __future__ import annotations

from typing import Any

import pytest

from .reference_model import (
    MANUAL,
    READY,
    ReferenceError_,
    ReferenceModel,
    apportion,
    ref_part,
    ref_split,
)

NOW = "2026-11-05T10:00:00+08:00"
PAID_AT = "2026-11-01T10:00:00+08:00"


def line(lid: str, price: int, qty: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": lid,
        "sku": f"SKU-{lid}",
        "title": f"Item {lid}",
        "merchant_id": "m-1",
        "quantity": qty,
        "unit_price": price,
        **extra,
    }


def card(amount: int, tid: str = "T1") -> dict[str, Any]:
    return {
        "id": tid,
        "kind": "external",
        "method": "card",
        "amount": amount,
        "gateway_txn_id": "ch",
    }


def order(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "o-1",
        "customer_id": "c-1",
        "currency": "CNY",
        "status": "delivered",
        "paid_at": PAID_AT,
        "lines": [],
        "adjustments": [],
        "tenders": [],
        "shipping_fee": 0,
        "points_earned": {"points": 0, "status": "granted"},
        "growth_value": 0,
        "campaigns": [],
        "rewards": [],
        "benefits": [],
    }
    base.update(fields)
    return base


def request(*items: tuple[str, int], reason: str = "changed_mind", **extra: Any) -> dict[str, Any]:
    return {
        "order_id": "o-1",
        "lines": [{"line_id": lid, "quantity": q} for lid, q in items],
        "reason": reason,
        "kind": extra.pop("kind", "refund_only"),
        **extra,
    }


SNAP: dict[str, Any] = {"customer_id": "c-1"}


# ------------------------------------------------------------------------------ arithmetic


def test_split_ties_go_to_the_earlier_part() -> None:
    assert ref_split(10, [1, 1, 1]) == [4, 3, 3]
    assert ref_split(10000, [40000, 20000]) == [6667, 3333]
    assert ref_split(0, [5, 0]) == [0, 0]
    assert ref_split(7, [0, 3, 0, 3]) == [0, 4, 0, 3]


def test_cumulative_part() -> None:
    assert [ref_part(1000, k, 3) for k in range(4)] == [0, 333, 666, 1000]


def test_apportion_in_order_line_order() -> None:
    o = order(
        lines=[line("X", 40000), line("Y", 20000)],
        adjustments=[
            {
                "id": "A1",
                "kind": "threshold_discount",
                "amount": 10000,
                "lines": ["Y", "X"],
                "source": {"type": "campaign", "id": "c"},
            }
        ],
    )
    shares, paid = apportion(o)
    assert shares["A1"] == {"X": 6667, "Y": 3333}
    assert paid == {"X": 33333, "Y": 16667}


# ------------------------------------------------------------------------------ SPEC examples


def test_points_shortfall_example_49620() -> None:
    o = order(
        lines=[line("L1", 50000)],
        tenders=[card(50000)],
        points_earned={"points": 500, "status": "granted"},
    )
    ref = ReferenceModel(o, {"customer_id": "c-1", "points_balance": 120})
    res = ref.step(request(("L1", 1)), NOW)
    assert res.status == READY
    assert res.amount["total"] == 49620
    assert res.tenders["T1"]["amount"] == 49620
    assert (res.points_reverse_due, res.points_from_balance, res.points_shortfall) == (
        500,
        120,
        380,
    )
    assert res.deductions == {("points_shortfall", "points"): 380}
    assert ref.points_balance == 0


def test_points_shortfall_allow_negative() -> None:
    o = order(
        lines=[line("L1", 50000)],
        tenders=[card(50000)],
        points_earned={"points": 500, "status": "granted"},
    )
    ref = ReferenceModel(
        o, {"customer_id": "c-1", "points_balance": 120}, {"points_shortfall": "allow_negative"}
    )
    res = ref.step(request(("L1", 1)), NOW)
    assert res.amount["total"] == 50000
    assert ref.points_balance == -380


def test_pending_points_are_cancelled() -> None:
    o = order(
        lines=[line("L1", 50000, 2)],
        tenders=[card(100000)],
        points_earned={"points": 1001, "status": "pending"},
    )
    ref = ReferenceModel(o, SNAP)
    res = ref.step(request(("L1", 1)), NOW)
    assert res.points_cancelled == 500 and res.points_shortfall == 0
    assert res.amount["total"] == 50000
    res = ref.step(request(("L1", 1)), NOW)
    assert res.points_cancelled == 501


def coupon_order() -> dict[str, Any]:
    return order(
        lines=[line("L1", 30000)],
        adjustments=[
            {
                "id": "A1",
                "kind": "coupon",
                "amount": 3000,
                "lines": ["L1"],
                "source": {"type": "coupon", "id": "CP-1"},
            }
        ],
        tenders=[card(27000)],
    )


def test_expired_coupon_is_reissued_27000() -> None:
    snap = {
        "customer_id": "c-1",
        "coupons": [{"id": "CP-1", "value": 3000, "valid_until": "2026-11-03T00:00:00+08:00"}],
    }
    ref = ReferenceModel(coupon_order(), snap)
    res = ref.step(request(("L1", 1)), NOW)
    assert res.amount["total"] == 27000
    assert res.coupons_reissued == {"CP-1": 3000}
    assert res.coupons_returned == []


def test_valid_coupon_returns_and_forfeit_policy() -> None:
    snap = {
        "customer_id": "c-1",
        "coupons": [{"id": "CP-1", "value": 3000, "valid_until": "2026-12-03T00:00:00+08:00"}],
    }
    res = ReferenceModel(coupon_order(), snap).step(request(("L1", 1)), NOW)
    assert res.coupons_returned == ["CP-1"]
    expired = {
        "customer_id": "c-1",
        "coupons": [{"id": "CP-1", "value": 3000, "valid_until": "2026-11-03T00:00:00+08:00"}],
    }
    res = ReferenceModel(coupon_order(), expired, {"expired_coupon": "forfeit"}).step(
        request(("L1", 1)), NOW
    )
    assert res.coupons_forfeited == ["CP-1"] and res.amount["total"] == 27000


def test_coupon_stays_used_on_partial_refund() -> None:
    o = coupon_order()
    o["lines"] = [line("L1", 15000, 2)]
    snap = {
        "customer_id": "c-1",
        "coupons": [{"id": "CP-1", "value": 3000, "valid_until": "2026-12-03T00:00:00+08:00"}],
    }
    ref = ReferenceModel(o, snap)
    res = ref.step(request(("L1", 1)), NOW)
    assert res.amount["total"] == 13500 and res.coupons_returned == []
    res = ref.step(request(("L1", 1)), NOW)
    assert res.amount["total"] == 13500 and res.coupons_returned == ["CP-1"]


def manjian_order() -> dict[str, Any]:
    return order(
        lines=[line("X", 40000), line("Y", 20000)],
        adjustments=[
            {
                "id": "A1",
                "kind": "threshold_discount",
                "amount": 10000,
                "lines": ["X", "Y"],
                "source": {"type": "campaign", "id": "cmp-500-100"},
            }
        ],
        campaigns=[{"id": "cmp-500-100", "kind": "threshold_discount", "threshold": 50000}],
        tenders=[card(50000)],
    )


def test_threshold_discount_10000_then_40000() -> None:
    ref = ReferenceModel(manjian_order(), SNAP)
    res = ref.step(request(("Y", 1)), NOW)
    assert res.amount == {
        "goods": 16667,
        "give_backs": 0,
        "shipping": 0,
        "deductions": 6667,
        "carry": 0,
        "rounding": 0,
        "total": 10000,
    }
    assert res.deductions == {("discount_clawback", "A1"): 6667}
    res = ref.step(request(("X", 1)), NOW)
    assert res.amount["total"] == 40000
    assert res.amount["goods"] == 33333 and res.amount["give_backs"] == 6667
    assert res.give_backs == {("discount_give_back", "A1"): 6667}
    assert ref.tender_refunded == {"T1": 50000}


def test_threshold_discount_still_qualifying_moves_paid_amount() -> None:
    ref = ReferenceModel(manjian_order(), SNAP)
    res = ref.step(request(("X", 1)), NOW)  # kept Y 200 < 500: fails, Y's 33.33 clawed
    assert res.amount["total"] == 33333 - 3333


def cashback_order(
    lines: list[dict[str, Any]],
    tiers: list[tuple[int, int]],
    reward: int,
    status: str = "granted",
) -> dict[str, Any]:
    total = sum(x["unit_price"] * x["quantity"] for x in lines)
    return order(
        lines=lines,
        tenders=[card(total)],
        campaigns=[
            {
                "id": "cmp-cb",
                "kind": "order_cashback",
                "measure": "paid",
                "tiers": [{"threshold": t, "reward": r} for t, r in tiers],
            }
        ],
        rewards=[{"id": "R1", "campaign_id": "cmp-cb", "amount": reward, "status": status}],
    )


def test_cashback_kept_basket_still_qualifies_20000() -> None:
    o = cashback_order([line("A", 20000), line("B", 100000)], [(100000, 20000)], 20000)
    res = ReferenceModel(o, SNAP).step(request(("A", 1)), NOW)
    assert res.amount["total"] == 20000 and res.reward_clawbacks == {}


def test_cashback_clawed_80000() -> None:
    o = cashback_order([line("A", 20000), line("B", 100000)], [(100000, 20000)], 20000)
    res = ReferenceModel(o, SNAP).step(request(("B", 1)), NOW)
    assert res.amount["total"] == 80000
    assert res.reward_clawbacks == {"R1": 20000}
    assert res.deductions == {("reward_clawback", "R1"): 20000}


def test_cashback_pending_is_cancelled_not_clawed() -> None:
    o = cashback_order([line("A", 20000), line("B", 100000)], [(100000, 20000)], 20000, "pending")
    res = ReferenceModel(o, SNAP).step(request(("B", 1)), NOW)
    assert res.amount["total"] == 100000
    assert res.reward_cancels == {"R1": 20000} and res.reward_clawbacks == {}


def test_cashback_tiers_70000_then_100000() -> None:
    o = cashback_order(
        [line("A", 120000), line("B", 100000)], [(100000, 20000), (200000, 50000)], 50000
    )
    ref = ReferenceModel(o, SNAP)
    res = ref.step(request(("B", 1)), NOW)
    assert res.amount["total"] == 70000 and res.reward_clawbacks == {"R1": 30000}
    res = ref.step(request(("A", 1)), NOW)
    assert res.amount["total"] == 100000 and res.reward_clawbacks == {"R1": 20000}


def gift_order() -> dict[str, Any]:
    return order(
        lines=[
            line("X", 40000),
            line("Y", 20000),
            line("G", 0, gift_of="cmp-gift", declared_value=3000),
        ],
        campaigns=[{"id": "cmp-gift", "kind": "gift_with_purchase", "threshold": 50000}],
        tenders=[card(60000)],
    )


def test_kept_gift_17000_then_given_back() -> None:
    ref = ReferenceModel(gift_order(), SNAP)
    res = ref.step(request(("Y", 1)), NOW)
    assert res.amount["total"] == 17000
    assert res.deductions == {("kept_gift", "G"): 3000}
    res = ref.step(request(("G", 1)), NOW)
    assert res.amount["total"] == 3000
    assert res.give_backs == {("kept_gift_give_back", "G"): 3000}
    res = ref.step(request(("X", 1)), NOW)
    assert res.amount["total"] == 40000
    assert ref.tender_refunded == {"T1": 60000}


def test_gift_returned_with_request_is_not_deducted() -> None:
    res = ReferenceModel(gift_order(), SNAP).step(request(("Y", 1), ("G", 1)), NOW)
    assert res.amount["total"] == 20000 and res.deductions == {}


def test_deductions_exceeding_amount_need_manual_review() -> None:
    o = manjian_order()
    o["adjustments"][0]["amount"] = 50000  # X paid 6667, Y paid 3333
    o["tenders"] = [card(10000)]
    ref = ReferenceModel(o, SNAP)
    res = ref.step(request(("Y", 1)), NOW)
    # goods 3333, lost discount on X 33333: excess 30000
    assert res.status == MANUAL and res.amount["total"] == 0 and res.excess == 30000


# ------------------------------------------------------------------------------ tenders


def test_tender_split_by_room_and_points_leftover_to_cash() -> None:
    o = order(
        lines=[line("L1", 1001, 3)],
        tenders=[card(1503), {"id": "T2", "kind": "points", "amount": 1500, "points": 150}],
    )
    ref = ReferenceModel(o, SNAP, {"minor_units_per_point": 10})
    res = ref.step(request(("L1", 1)), NOW)
    # 1001 split 1503:1500 -> 501 / 500 (remainder .x); points 50 whole
    assert res.amount["total"] == 1001
    assert res.tenders == {"T1": {"amount": 501, "points": 0}, "T2": {"amount": 500, "points": 50}}
    res = ref.step(request(("L1", 2)), NOW)
    assert ref.tender_refunded == {"T1": 1503, "T2": 1500}


def test_points_tender_rounded_up_when_cash_is_full_gives_carry() -> None:
    o = order(
        lines=[line("L1", 15, 3)],
        tenders=[{"id": "T1", "kind": "points", "amount": 40, "points": 4}, card(5, "T2")],
    )
    ref = ReferenceModel(o, SNAP, {"minor_units_per_point": 10})
    res = ref.step(request(("L1", 1)), NOW)
    # 15 split by room 40:5 -> 13 / 2; points: 1 point + 3 leftover; cash room 3 -> takes it
    assert res.tenders == {"T1": {"amount": 10, "points": 1}, "T2": {"amount": 5, "points": 0}}
    res = ref.step(request(("L1", 1)), NOW)
    # 15 over rooms 30:0 -> points 15: 1 point + 5 leftover, no cash room -> 2 points
    assert res.tenders["T1"] == {"amount": 20, "points": 2}
    assert res.amount["rounding"] == 5 and res.amount["total"] == 20
    res = ref.step(request(("L1", 1)), NOW)
    assert res.amount["carry"] == -5 and res.amount["total"] == 10
    assert ref.tender_refunded == {"T1": 40, "T2": 5}


def test_shipping_back_with_last_goods_unit_when_merchant_fault() -> None:
    o = order(lines=[line("L1", 1000, 2)], shipping_fee=800, tenders=[card(2800)])
    ref = ReferenceModel(o, SNAP)
    assert ref.step(request(("L1", 1), reason="quality_issue"), NOW).amount["shipping"] == 0
    res = ref.step(request(("L1", 1)), NOW)
    assert res.amount["shipping"] == 800 and res.amount["total"] == 1800
    o2 = order(lines=[line("L1", 1000, 2)], shipping_fee=800, tenders=[card(2800)])
    res = ReferenceModel(o2, SNAP).step(request(("L1", 2)), NOW)
    assert res.amount["shipping"] == 0  # delivered, customer's reason


def test_return_label_deducted_for_customer_reason() -> None:
    o = order(lines=[line("L1", 5000)], tenders=[card(5000)])
    res = ReferenceModel(o, SNAP).step(
        request(("L1", 1), kind="return_and_refund", return_method="prepaid_label"), NOW
    )
    assert res.amount["total"] == 4000 and res.deductions == {("return_label", "label"): 1000}
    res = ReferenceModel(o, SNAP).step(
        request(("L1", 1), reason="wrong_item", kind="return_and_refund", return_method="pickup"),
        NOW,
    )
    assert res.amount["total"] == 5000


def test_cumulative_cashback_claws_rewards_above_new_spend() -> None:
    o = order(
        lines=[line("L1", 50000)],
        tenders=[card(50000)],
        campaigns=[
            {
                "id": "cmp-cum",
                "kind": "cumulative_cashback",
                "tiers": [{"threshold": 300000, "reward": 10000}],
            }
        ],
    )
    snap = {
        "customer_id": "c-1",
        "campaign_spend": {"cmp-cum": 320000},
        "campaign_rewards": [
            {
                "id": "R9",
                "campaign_id": "cmp-cum",
                "threshold": 300000,
                "amount": 10000,
                "status": "granted",
            }
        ],
    }
    ref = ReferenceModel(o, snap)
    res = ref.step(request(("L1", 1)), NOW)
    assert res.amount["total"] == 40000 and res.reward_clawbacks == {"R9": 10000}
    assert ref.customer_snapshot()["campaign_spend"] == {"cmp-cum": 270000}


def test_refused_requests() -> None:
    ref = ReferenceModel(manjian_order(), SNAP)
    for req, code in [
        (request(), "refund.empty_request"),
        (request(("X", 0)), "refund.invalid_quantity"),
        (request(("X", 1), ("X", 1)), "refund.duplicate_line"),
        (request(("Z", 1)), "refund.unknown_line"),
        (request(("X", 2)), "refund.quantity_exceeds_remaining"),
    ]:
        with pytest.raises(ReferenceError_) as err:
            ref.step(req, NOW)
        assert err.value.code == code
    ref.step(request(("X", 1)), NOW)
    with pytest.raises(ReferenceError_) as err:
        ref.step(request(("X", 1)), NOW)
    assert err.value.code == "refund.units_exhausted"
