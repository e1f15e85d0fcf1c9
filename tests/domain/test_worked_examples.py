"""Every worked example of SPEC §3, with SPEC's own figures (in fen)."""

from __future__ import annotations

from typing import Any

from refundry.demo import worked_examples as ex
from refundry.domain.json_io import plan_from_json


def plan(
    order: dict[str, Any],
    req: dict[str, Any],
    *,
    snapshot: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return plan_from_json(
        order=order,
        snapshot=snapshot or ex.snapshot(),
        request=req,
        history=history or [],
        now=ex.NOW,
    )


def effects(p: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in p["effects"] if e["type"] == kind]


def test_full_refund_with_points_short_deducts_shortfall_496_20() -> None:
    p = plan(ex.POINTS, ex.request("o-points", "A"), snapshot=ex.POINTS_SNAPSHOT)
    (reversal,) = effects(p, "points_reverse_earned")
    assert (reversal["points"], reversal["from_balance"], reversal["shortfall"]) == (500, 120, 380)
    assert p["amount"]["total"] == 49620
    assert [t["amount"] for t in p["tenders"]] == [49620]
    assert p["deductions"][0]["kind"] == "points_shortfall"


def test_expired_coupon_refund_270_and_reissued_30_coupon_for_7_days() -> None:
    p = plan(ex.COUPON, ex.request("o-coupon", "A"), snapshot=ex.COUPON_SNAPSHOT)
    assert p["amount"]["total"] == 27000
    (reissue,) = effects(p, "coupon_reissue")
    assert reissue["value"] == 3000
    assert reissue["valid_until"] == "2026-12-01T04:00:00Z"  # 12:00 in Shanghai, in UTC
    assert effects(p, "coupon_return") == []


def test_threshold_discount_refund_y_100_then_x_400() -> None:
    first = plan(ex.THRESHOLD, ex.request("o-500-100", "Y"))
    assert [u["paid"] for u in first["units"]] == [16667]
    assert first["deductions"][0]["amount"] == 6667
    assert first["amount"]["total"] == 10000
    second = plan(ex.THRESHOLD, ex.request("o-500-100", "X"), history=[first])
    assert second["units"][0]["paid"] == 33333
    assert second["give_backs"][0]["amount"] == 6667
    assert second["amount"]["total"] == 40000


def test_cashback_still_qualifying_refund_200_moves_200() -> None:
    p = plan(ex.CASHBACK, ex.request("o-1000-200", "B"))
    assert p["amount"]["total"] == 20000
    assert p["deductions"] == []


def test_cashback_lost_refund_1000_claws_200_moves_800() -> None:
    p = plan(ex.CASHBACK, ex.request("o-1000-200", "A"))
    assert [(d["kind"], d["amount"]) for d in p["deductions"]] == [("reward_clawback", 20000)]
    assert p["amount"]["total"] == 80000


def test_tiered_cashback_refund_b_700_then_a_1000() -> None:
    first = plan(ex.TIERED, ex.request("o-tiers", "B"))
    assert [(d["kind"], d["amount"]) for d in first["deductions"]] == [("reward_clawback", 30000)]
    assert first["amount"]["total"] == 70000
    second = plan(ex.TIERED, ex.request("o-tiers", "A"), history=[first])
    assert [(d["kind"], d["amount"]) for d in second["deductions"]] == [("reward_clawback", 20000)]
    assert second["amount"]["total"] == 100000


def test_gift_kept_when_basket_drops_deducts_declared_value_170() -> None:
    p = plan(ex.GIFT, ex.request("o-gift", "Y"))
    assert [(d["kind"], d["amount"]) for d in p["deductions"]] == [("kept_gift", 3000)]
    assert p["amount"]["total"] == 17000


def test_partial_refund_keeps_coupon_used_and_moves_apportioned_paid() -> None:
    order = ex.order(
        "o-partial-coupon",
        [ex.line("A", 20000), ex.line("B", 10000)],
        27000,
        adjustments=[
            {
                "id": "ADJ-C",
                "kind": "coupon",
                "amount": 3000,
                "lines": ["A", "B"],
                "source": {"type": "coupon", "id": "CP-30"},
            }
        ],
    )
    p = plan(order, ex.request("o-partial-coupon", "B"), snapshot=ex.COUPON_SNAPSHOT)
    assert p["amount"]["total"] == 9000  # 10000 list - 1000 apportioned coupon
    assert [e["type"] for e in p["effects"] if e["type"].startswith("coupon")] == []
