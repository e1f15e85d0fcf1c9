"""Table-driven refund scenarios with figures computed by hand from docs/refund-rules.md.

Every scenario states an order, a customer snapshot, one or more requests (each step gets the
plans of the earlier steps as history) and, per step, the exact figures the rules give. The
comment above each scenario shows the arithmetic so that a reviewer can check it without running
anything. Notation as in refund-rules.md: P = a line's apportioned paid amount,
part(X, k, n) = floor(X * k / n), "lost" = discount sitting on kept units of a failed 满减.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

try:  # tests/domain is a package
    from .scenario_builders import (
        ENDED,
        EXPIRED,
        NOW,
        VALID,
        Json,
        adjustment,
        benefit,
        campaign,
        card,
        coupon,
        entitlement_discount,
        gift,
        gift_card,
        line,
        order,
        other_order,
        points_tender,
        request,
        ret,
        reward,
        snap_coupon,
        snap_entitlement,
        snap_reward,
        snapshot,
        threshold_discount,
        tiers,
        wallet,
    )
except ImportError:  # pragma: no cover - tests/domain on sys.path (rootdir-less layout)
    from scenario_builders import (
        ENDED,
        EXPIRED,
        NOW,
        VALID,
        Json,
        adjustment,
        benefit,
        campaign,
        card,
        coupon,
        entitlement_discount,
        gift,
        gift_card,
        line,
        order,
        other_order,
        points_tender,
        request,
        ret,
        reward,
        snap_coupon,
        snap_entitlement,
        snap_reward,
        snapshot,
        threshold_discount,
        tiers,
        wallet,
    )


class Substr(str):
    """An expected mention that only has to occur inside some string of an effect."""

    __slots__ = ()


@dataclass(frozen=True)
class Fx:
    """At least one effect of `type` whose values (at any depth) include every `mentions`."""

    type: str
    mentions: tuple[Any, ...] = ()


def fx(type_: str, *mentions: Any) -> Fx:
    return Fx(type_, mentions)


@dataclass(frozen=True)
class Expect:
    total: int
    goods: int
    tenders: Mapping[str, int] = field(default_factory=dict)  # non-zero amounts by tender id
    points: Mapping[str, int] = field(default_factory=dict)  # whole points by points tender id
    ded: Mapping[str, int] = field(default_factory=dict)  # deductions by kind
    gb: Mapping[str, int] = field(default_factory=dict)  # give-backs by kind
    shipping: int = 0
    carry: int = 0
    status: str = "ready"
    excess: int | None = None
    effects: tuple[Fx, ...] = ()
    absent: tuple[str, ...] = ()  # effect types that must not appear
    reverse_earned: tuple[int, int, int] | None = None  # (points, from_balance, shortfall)
    rounding: int = 0  # amount.rounding: a points tender rounded up to a whole point

    def __post_init__(self) -> None:
        # Guards the hand arithmetic of the table itself: the parts must add up.
        net = (
            self.goods + sum(self.gb.values()) + self.shipping - sum(self.ded.values()) + self.carry
        )
        net += self.rounding
        moved = sum(self.tenders.values())
        if self.status == "ready":
            assert net == self.total, (net, self.total)
            assert moved == self.total, (moved, self.total)
        else:
            assert self.total == 0 and moved == 0, (self.total, moved)
            # excess = what the step cannot take its deductions from (refund-rules.md §3-§4);
            # for claw-backs that is -net. None = not asserted; a points shortfall is checked
            # against its own arithmetic in the scenario.


@dataclass(frozen=True)
class Step:
    request: Json
    expect: Expect
    snapshot: Json | None = None  # the customer after the earlier steps, where it matters


@dataclass(frozen=True)
class Scenario:
    name: str
    order: Json
    steps: tuple[Step, ...]
    snapshot: Json = field(default_factory=snapshot)
    policy: Json | None = None
    now: str = NOW


def sc(
    name: str,
    order_: Json,
    *steps: Step,
    snap: Json | None = None,
    policy: Json | None = None,
    now: str = NOW,
) -> Scenario:
    return Scenario(name, order_, steps, snap if snap is not None else snapshot(), policy, now)


def st(req: Json, expect: Expect, snap: Json | None = None) -> Step:
    return Step(req, expect, snap)


def E(total: int, goods: int, **kw: Any) -> Expect:
    return Expect(total=total, goods=goods, **kw)


CP1_VALID = snapshot(coupons=[snap_coupon("CP-1", 1000)])

# Campaign and order pieces reused below.
C500 = campaign("cmp-500-100", "threshold_discount", measure="list", threshold=50000)
GIFT500 = campaign("cmp-gift", "gift_with_purchase", measure="list", threshold=50000)
CB1000 = campaign("cmp-cb", "order_cashback", measure="paid", tiers=tiers((100000, 20000)))
CUM = campaign("cmp-cum", "cumulative_cashback", measure="paid", tiers=tiers((300000, 10000)))
CUM_TIERS = campaign(
    "cmp-cum", "cumulative_cashback", measure="paid", tiers=tiers((80000, 10000), (160000, 30000))
)
FIRST = campaign("cmp-first", "first_purchase")


def flash(**fields: Any) -> Json:
    return campaign(
        "cmp-flash", "participation_quota", quota_per_customer=1, lines=["L1"], **fields
    )


def flash_order(*, quantity: int = 1, **fields: Any) -> Json:
    return order(lines=[line("L1", 10000, quantity), line("L2", 5000)], campaigns=[flash(**fields)])


FLASH_USED = {"cmp-flash": 1}


def x400_y200_500_100(**kw: Any) -> Json:
    # 满500减100 on X 40000 + Y 20000: 10000 * 40000/60000 = 6666.67, * 20000/60000 = 3333.33;
    # floors 6666 + 3333 = 9999, the 1 left goes to the larger remainder (.67, X) -> 6667 / 3333.
    # P_X = 33333, P_Y = 16667, GP = 50000.
    return order(
        lines=[line("L1", 40000), line("L2", 20000)],
        adjustments=[threshold_discount("A1", 10000, ["L1", "L2"], "cmp-500-100")],
        campaigns=[C500],
        **kw,
    )


def x400_y200_gift(gift_qty: int = 1, gift_value: int = 3000) -> Json:
    return order(
        lines=[line("L1", 40000), line("L2", 20000), gift("G1", "cmp-gift", gift_value, gift_qty)],
        campaigns=[GIFT500],
    )


SCENARIOS: list[Scenario] = [
    # ---------------------------------------------------------------- single / multi line
    # 1 x 10000 on card, full refund: 10000 back to T1.
    sc(
        "single_line_full_refund_to_card",
        order(lines=[line("L1", 10000)]),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 10000})),
    ),
    # L1 6000 + L2 4000, refund L2 only: 4000.
    sc(
        "multi_line_refund_one_line",
        order(lines=[line("L1", 6000), line("L2", 4000)]),
        st(request(("L2", 1)), E(4000, 4000, tenders={"T1": 4000})),
    ),
    # 3 x 10000 with a 1000 coupon: P = 29000. One unit at a time:
    # part(29000,1,3) = 9666; part(.,2,3) = 19333 -> 9667; 29000 - 19333 = 9667.
    # The coupon comes back only when the last unit leaves (valid -> as itself).
    sc(
        "three_units_with_coupon_refunded_one_by_one_cumulative_rounding",
        order(lines=[line("L1", 10000, 3)], adjustments=[coupon("A1", 1000, ["L1"])]),
        st(
            request(("L1", 1)),
            E(9666, 9666, tenders={"T1": 9666}, absent=("coupon_return", "coupon_reissue")),
        ),
        st(request(("L1", 1)), E(9667, 9667, tenders={"T1": 9667}, absent=("coupon_return",))),
        st(
            request(("L1", 1)),
            E(9667, 9667, tenders={"T1": 9667}, effects=(fx("coupon_return", "CP-1"),)),
        ),
        snap=CP1_VALID,
    ),
    # Same order, 2 units then 1: part(29000,2,3) = floor(19333.33) = 19333; then 9667.
    sc(
        "three_units_with_coupon_two_then_one",
        order(lines=[line("L1", 10000, 3)], adjustments=[coupon("A1", 1000, ["L1"])]),
        st(request(("L1", 2)), E(19333, 19333, tenders={"T1": 19333})),
        st(request(("L1", 1)), E(9667, 9667, tenders={"T1": 9667})),
        snap=CP1_VALID,
    ),
    # 7 x 999 = 6993, coupon 100 -> P = 6893. 3 units: floor(6893*3/7) = floor(2954.14) = 2954;
    # the other 4: 6893 - 2954 = 3939.
    sc(
        "seven_units_odd_price_three_then_four",
        order(lines=[line("L1", 999, 7)], adjustments=[coupon("A1", 100, ["L1"])]),
        st(request(("L1", 3)), E(2954, 2954, tenders={"T1": 2954})),
        st(
            request(("L1", 4)),
            E(3939, 3939, tenders={"T1": 3939}, effects=(fx("coupon_return", "CP-1"),)),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 100)]),
    ),
    # ---------------------------------------------------------------- apportionment
    # Coupon 1000 over three lines of 3000: 333.33 each -> 333 * 3 = 999, the 1 left is a tie
    # of equal remainders -> first line: D = 334 / 333 / 333, P = 2666 / 2667 / 2667.
    # Refund L1 -> 2666; then L3 -> 2667; L2 is kept so the coupon stays used.
    sc(
        "coupon_apportion_tie_goes_to_first_line",
        order(
            lines=[line("L1", 3000), line("L2", 3000), line("L3", 3000)],
            adjustments=[coupon("A1", 1000, ["L1", "L2", "L3"])],
        ),
        st(request(("L1", 1)), E(2666, 2666, tenders={"T1": 2666})),
        st(request(("L3", 1)), E(2667, 2667, tenders={"T1": 2667}, absent=("coupon_return",))),
        snap=CP1_VALID,
    ),
    # Coupon 1000 over 5000 / 3000 / 1000: 555.56 / 333.33 / 111.11 -> floors 999, the 1 left
    # goes to the largest remainder (L1): D = 556 / 333 / 111, P = 4444 / 2667 / 889.
    # Refund L1 + L3 in one request: 4444 + 889 = 5333; L2 kept -> coupon stays used.
    sc(
        "coupon_apportion_largest_remainder_two_lines_in_one_request",
        order(
            lines=[line("L1", 5000), line("L2", 3000), line("L3", 1000)],
            adjustments=[coupon("A1", 1000, ["L1", "L2", "L3"])],
        ),
        st(
            request(("L1", 1), ("L3", 1)),
            E(5333, 5333, tenders={"T1": 5333}, absent=("coupon_return", "coupon_reissue")),
        ),
        snap=CP1_VALID,
    ),
    # ---------------------------------------------------------------- coupons
    # SPEC §3.3: 30000 list, coupon 3000 -> 27000 paid; still valid -> comes back as itself.
    sc(
        "coupon_valid_full_refund_returns_coupon",
        order(lines=[line("L1", 30000)], adjustments=[coupon("A1", 3000, ["L1"])]),
        st(
            request(("L1", 1)),
            E(
                27000,
                27000,
                tenders={"T1": 27000},
                effects=(fx("coupon_return", "CP-1"),),
                absent=("coupon_reissue", "coupon_forfeit"),
            ),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 3000)]),
    ),
    # SPEC §3.3 example: coupon expired 2026-11-10 < now -> 27000 back and a new 3000 coupon
    # valid 7 days from now (2026-11-20 + 7 = 2026-11-27).
    sc(
        "coupon_expired_full_refund_reissued_for_7_days",
        order(lines=[line("L1", 30000)], adjustments=[coupon("A1", 3000, ["L1"])]),
        st(
            request(("L1", 1)),
            E(
                27000,
                27000,
                tenders={"T1": 27000},
                effects=(fx("coupon_reissue", 3000, Substr("2026-11-27")),),
                absent=("coupon_return", "coupon_forfeit"),
            ),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 3000, EXPIRED)]),
    ),
    # expired_coupon = forfeit: money as above (27000), the coupon is not replaced.
    sc(
        "coupon_expired_forfeit_policy",
        order(lines=[line("L1", 30000)], adjustments=[coupon("A1", 3000, ["L1"])]),
        st(
            request(("L1", 1)),
            E(
                27000,
                27000,
                tenders={"T1": 27000},
                effects=(fx("coupon_forfeit", "CP-1"),),
                absent=("coupon_return", "coupon_reissue"),
            ),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 3000, EXPIRED)]),
        policy={"expired_coupon": "forfeit"},
    ),
    # coupon_reissue_days = 14: new coupon valid until 2026-11-20 + 14 = 2026-12-04.
    sc(
        "coupon_expired_reissue_days_policy_14",
        order(lines=[line("L1", 30000)], adjustments=[coupon("A1", 3000, ["L1"])]),
        st(
            request(("L1", 1)),
            E(
                27000,
                27000,
                tenders={"T1": 27000},
                effects=(fx("coupon_reissue", 3000, Substr("2026-12-04")),),
            ),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 3000, EXPIRED)]),
        policy={"coupon_reissue_days": 14},
    ),
    # valid_until == now: "as itself if now < valid_until" is false -> reissued.
    sc(
        "coupon_expiring_exactly_now_is_reissued",
        order(lines=[line("L1", 30000)], adjustments=[coupon("A1", 3000, ["L1"])]),
        st(
            request(("L1", 1)),
            E(
                27000,
                27000,
                tenders={"T1": 27000},
                effects=(fx("coupon_reissue", 3000),),
                absent=("coupon_return",),
            ),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 3000, NOW)]),
    ),
    # Coupon 3000 on L1 20000 + L2 10000: D = 2000 / 1000 (exact), P = 18000 / 9000.
    # Refund L2 -> 9000, coupon stays used (L1 kept); then L1 -> 18000 and the coupon returns.
    sc(
        "coupon_partial_refund_stays_used_then_returned",
        order(
            lines=[line("L1", 20000), line("L2", 10000)],
            adjustments=[coupon("A1", 3000, ["L1", "L2"])],
        ),
        st(
            request(("L2", 1)),
            E(9000, 9000, tenders={"T1": 9000}, absent=("coupon_return", "coupon_reissue")),
        ),
        st(
            request(("L1", 1)),
            E(18000, 18000, tenders={"T1": 18000}, effects=(fx("coupon_return", "CP-1"),)),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 3000)]),
    ),
    # Coupon 2000 on L1 only (20000 -> P 18000); L2 10000 kept. None of the coupon's lines has a
    # kept unit after refunding L1 -> the coupon returns although the order is not fully refunded.
    sc(
        "coupon_on_one_line_returned_when_that_line_is_gone",
        order(
            lines=[line("L1", 20000), line("L2", 10000)], adjustments=[coupon("A1", 2000, ["L1"])]
        ),
        st(
            request(("L1", 1)),
            E(18000, 18000, tenders={"T1": 18000}, effects=(fx("coupon_return", "CP-1"),)),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 2000)]),
    ),
    # ---------------------------------------------------------------- 满减 threshold discount
    # SPEC §3.4 example. P_X 33333, P_Y 16667 (see x400_y200_500_100).
    # Refund Y: kept list 40000 < 50000 -> failed; lost on X = 6667 -> 16667 - 6667 = 10000.
    # Refund X: 33333 + give-back 6667 = 40000. Whole: 10000 + 40000 = 50000 = GP.
    sc(
        "threshold_discount_fails_claws_kept_share_then_gives_back",
        x400_y200_500_100(),
        st(
            request(("L2", 1)),
            E(
                10000,
                16667,
                tenders={"T1": 10000},
                ded={"discount_clawback": 6667},
                effects=(fx("discount_clawback", "A1"),),
            ),
        ),
        st(
            request(("L1", 1)),
            E(
                40000,
                33333,
                tenders={"T1": 40000},
                gb={"discount_give_back": 6667},
                effects=(fx("discount_give_back", "A1"),),
            ),
        ),
    ),
    # 满500减100 on X 40000 + Y 20000 + Z 10000 (70000): 10000 * 4/7 = 5714.29, 2/7 = 2857.14,
    # 1/7 = 1428.57 -> floors 9999, the 1 goes to Z (.57): D = 5714 / 2857 / 1429,
    # P = 34286 / 17143 / 8571 (GP 60000).
    # Z: kept 60000 >= 50000 -> 8571. Y: kept 40000 -> failed, lost 5714 -> 17143 - 5714 = 11429.
    # X: 34286 + 5714 = 40000. Sum 8571 + 11429 + 40000 = 60000.
    sc(
        "threshold_discount_still_met_then_fails_then_last_unit",
        order(
            lines=[line("L1", 40000), line("L2", 20000), line("L3", 10000)],
            adjustments=[threshold_discount("A1", 10000, ["L1", "L2", "L3"], "cmp-500-100")],
            campaigns=[C500],
        ),
        st(request(("L3", 1)), E(8571, 8571, tenders={"T1": 8571}, absent=("discount_clawback",))),
        st(
            request(("L2", 1)),
            E(11429, 17143, tenders={"T1": 11429}, ded={"discount_clawback": 5714}),
        ),
        st(
            request(("L1", 1)),
            E(40000, 34286, tenders={"T1": 40000}, gb={"discount_give_back": 5714}),
        ),
    ),
    # X 30000 + Y 20000 + Z 10000, 满500减100: 5000 / 3333.33 / 1666.67 -> 5000 / 3333 / 1667
    # (the 1 to Z, .67). P_Z = 8333. Refund Z: kept 50000 >= 50000 (inclusive) -> 8333, no claw.
    sc(
        "threshold_discount_inclusive_threshold_keeps_discount",
        order(
            lines=[line("L1", 30000), line("L2", 20000), line("L3", 10000)],
            adjustments=[threshold_discount("A1", 10000, ["L1", "L2", "L3"], "cmp-500-100")],
            campaigns=[C500],
        ),
        st(request(("L3", 1)), E(8333, 8333, tenders={"T1": 8333}, absent=("discount_clawback",))),
    ),
    # 4 x 15000 = 60000, 满500减100 on L1: D = 10000, P = 50000.
    # 1 unit: kept 45000 < 50000 -> failed. goods part(50000,1,4) = 12500,
    #   lost = 10000 - part(10000,1,4) = 7500 -> 12500 - 7500 = 5000.
    # 2 units: goods 37500 - 12500 = 25000; lost 10000 - 7500 = 2500 -> give-back 5000 -> 30000.
    # 1 unit: goods 12500, give-back 2500 -> 15000. Sum 5000 + 30000 + 15000 = 50000.
    sc(
        "threshold_discount_multi_unit_claw_and_unit_by_unit_give_back",
        order(
            lines=[line("L1", 15000, 4)],
            adjustments=[threshold_discount("A1", 10000, ["L1"], "cmp-500-100")],
            campaigns=[C500],
        ),
        st(
            request(("L1", 1)),
            E(5000, 12500, tenders={"T1": 5000}, ded={"discount_clawback": 7500}),
        ),
        st(
            request(("L1", 2)),
            E(30000, 25000, tenders={"T1": 30000}, gb={"discount_give_back": 5000}),
        ),
        st(
            request(("L1", 1)),
            E(15000, 12500, tenders={"T1": 15000}, gb={"discount_give_back": 2500}),
        ),
    ),
    # Measure paid, threshold 35000: refund Y -> kept paid P_X = 33333 < 35000 -> failed
    # (kept list 40000 would still reach it) -> 16667 - 6667 = 10000.
    sc(
        "threshold_discount_measured_on_paid_fails_where_list_would_pass",
        order(
            lines=[line("L1", 40000), line("L2", 20000)],
            adjustments=[threshold_discount("A1", 10000, ["L1", "L2"], "cmp-paid")],
            campaigns=[campaign("cmp-paid", "threshold_discount", measure="paid", threshold=35000)],
        ),
        st(
            request(("L2", 1)),
            E(10000, 16667, tenders={"T1": 10000}, ded={"discount_clawback": 6667}),
        ),
    ),
    # X 45000 + Y 5000, 满500减100: D = 9000 / 1000, P = 36000 / 4000. Refund Y: kept 45000 fails,
    # lost 9000 > 4000 -> net -5000 -> needs_manual_review, excess 5000, nothing moves.
    sc(
        "threshold_claw_exceeds_refund_needs_manual_review",
        order(
            lines=[line("L1", 45000), line("L2", 5000)],
            adjustments=[threshold_discount("A1", 10000, ["L1", "L2"], "cmp-500-100")],
            campaigns=[C500],
        ),
        st(
            request(("L2", 1)),
            E(0, 4000, ded={"discount_clawback": 9000}, status="needs_manual_review", excess=5000),
        ),
    ),
    # X 40000 + Y 10000, 满500减100: D = 8000 / 2000, P = 32000 / 8000. Refund Y: kept 40000 fails,
    # lost 8000 = goods 8000 -> total 0, ready, nothing moves.
    sc(
        "threshold_claw_equal_to_refund_moves_zero_and_is_ready",
        order(
            lines=[line("L1", 40000), line("L2", 10000)],
            adjustments=[threshold_discount("A1", 10000, ["L1", "L2"], "cmp-500-100")],
            campaigns=[C500],
        ),
        st(request(("L2", 1)), E(0, 8000, ded={"discount_clawback": 8000})),
    ),
    # As the SPEC example, paid card 30000 + wallet 20000. Step 1 total 10000 by 30000:20000 ->
    # 6000 / 4000. Step 2 total 40000 by remaining 24000:16000 -> 24000 / 16000 (both whole).
    sc(
        "threshold_claw_split_over_two_tenders",
        x400_y200_500_100(tenders=[card("T1", 30000), wallet("T2", 20000)]),
        st(
            request(("L2", 1)),
            E(10000, 16667, tenders={"T1": 6000, "T2": 4000}, ded={"discount_clawback": 6667}),
        ),
        st(
            request(("L1", 1)),
            E(40000, 33333, tenders={"T1": 24000, "T2": 16000}, gb={"discount_give_back": 6667}),
        ),
    ),
    # 满500减100 (6667 / 3333) plus coupon 3000 on X: P_X = 40000 - 6667 - 3000 = 30333,
    # P_Y = 16667, GP 47000. Y: failed, lost 6667 (the coupon is never clawed) -> 10000.
    # X: 30333 + 6667 = 37000, coupon returns. Sum 47000.
    sc(
        "threshold_discount_and_coupon_on_same_line",
        order(
            lines=[line("L1", 40000), line("L2", 20000)],
            adjustments=[
                threshold_discount("A1", 10000, ["L1", "L2"], "cmp-500-100"),
                coupon("A2", 3000, ["L1"]),
            ],
            campaigns=[C500],
        ),
        st(
            request(("L2", 1)),
            E(10000, 16667, tenders={"T1": 10000}, ded={"discount_clawback": 6667}),
        ),
        st(
            request(("L1", 1)),
            E(
                37000,
                30333,
                tenders={"T1": 37000},
                gb={"discount_give_back": 6667},
                effects=(fx("coupon_return", "CP-1"),),
            ),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 3000)]),
    ),
    # Earned 500 points (granted, balance 1000) on the SPEC 满减 order: points follow the refunded
    # paid amount, not the money moved. Y: floor(500 * 16667 / 50000) = floor(166.67) = 166.
    # X: 500 - 166 = 334 (balance now 834, enough).
    sc(
        "threshold_claw_earned_points_follow_paid_not_moved",
        x400_y200_500_100(points_earned=500),
        st(
            request(("L2", 1)),
            E(
                10000,
                16667,
                tenders={"T1": 10000},
                ded={"discount_clawback": 6667},
                reverse_earned=(166, 166, 0),
            ),
        ),
        st(
            request(("L1", 1)),
            E(
                40000,
                33333,
                tenders={"T1": 40000},
                gb={"discount_give_back": 6667},
                reverse_earned=(334, 334, 0),
            ),
            snapshot(points_balance=834),
        ),
        snap=snapshot(points_balance=1000),
    ),
    # ---------------------------------------------------------------- 满赠 gift with purchase
    # SPEC §3.4 example: X 40000 + Y 20000 + gift G (declared 3000). Refund Y without G:
    # kept 40000 < 50000 -> failed, G kept -> 20000 - 3000 = 17000. Return G later: give-back 3000.
    sc(
        "gift_kept_deducts_declared_value_then_returned_gives_back",
        x400_y200_gift(),
        st(
            request(("L2", 1)),
            E(
                17000,
                20000,
                tenders={"T1": 17000},
                ded={"kept_gift": 3000},
                effects=(fx("kept_gift_deduction", "G1"),),
            ),
        ),
        st(
            request(("G1", 1)),
            E(
                3000,
                0,
                tenders={"T1": 3000},
                gb={"kept_gift_give_back": 3000},
                effects=(fx("kept_gift_give_back", "G1"),),
            ),
        ),
    ),
    # Y and G together: failed but no gift kept -> 20000, no deduction.
    sc(
        "gift_returned_with_refund_no_deduction",
        x400_y200_gift(),
        st(
            request(("L2", 1), ("G1", 1)),
            E(20000, 20000, tenders={"T1": 20000}, absent=("kept_gift_deduction",)),
        ),
    ),
    # X 40000 + Y 20000 + Z 10000 + gift: refund Z -> kept 60000 >= 50000 -> 10000, gift fine.
    sc(
        "gift_campaign_still_met_no_deduction",
        order(
            lines=[
                line("L1", 40000),
                line("L2", 20000),
                line("L3", 10000),
                gift("G1", "cmp-gift", 3000),
            ],
            campaigns=[GIFT500],
        ),
        st(
            request(("L3", 1)),
            E(10000, 10000, tenders={"T1": 10000}, absent=("kept_gift_deduction",)),
        ),
    ),
    # Two gift units declared 1500 each. Y: failed, 2 kept -> 20000 - 3000 = 17000.
    # One gift back: kept 1 -> give-back 1500. X + last gift: 40000 + 1500 = 41500.
    # Sum 17000 + 1500 + 41500 = 60000 (whole).
    sc(
        "gift_two_units_kept_then_returned_one_by_one",
        x400_y200_gift(gift_qty=2, gift_value=1500),
        st(request(("L2", 1)), E(17000, 20000, tenders={"T1": 17000}, ded={"kept_gift": 3000})),
        st(request(("G1", 1)), E(1500, 0, tenders={"T1": 1500}, gb={"kept_gift_give_back": 1500})),
        st(
            request(("L1", 1), ("G1", 1)),
            E(41500, 40000, tenders={"T1": 41500}, gb={"kept_gift_give_back": 1500}),
        ),
    ),
    # Every goods unit back but G kept: kept basket 0 fails -> 60000 - 3000 = 57000.
    sc(
        "full_refund_without_gift_deducts_gift",
        x400_y200_gift(),
        st(
            request(("L1", 1), ("L2", 1)),
            E(57000, 60000, tenders={"T1": 57000}, ded={"kept_gift": 3000}),
        ),
    ),
    # ---------------------------------------------------------------- 满返 order cashback
    # SPEC §3.4: 120000 bought (100000 + 20000), 满1000返200 granted. Refund 20000: kept paid
    # 100000 >= 100000 -> still earns 20000 -> 20000 back.
    sc(
        "order_cashback_kept_basket_still_qualifies",
        order(
            lines=[line("L1", 100000), line("L2", 20000)],
            campaigns=[CB1000],
            rewards=[reward("R1", "cmp-cb", 20000)],
        ),
        st(request(("L2", 1)), E(20000, 20000, tenders={"T1": 20000}, absent=("reward_clawback",))),
    ),
    # Refund 100000 instead: kept 20000 -> earns 0 -> 20000 clawed -> 80000.
    sc(
        "order_cashback_granted_clawed",
        order(
            lines=[line("L1", 100000), line("L2", 20000)],
            campaigns=[CB1000],
            rewards=[reward("R1", "cmp-cb", 20000)],
        ),
        st(
            request(("L1", 1)),
            E(
                80000,
                100000,
                tenders={"T1": 80000},
                ded={"reward_clawback": 20000},
                effects=(fx("reward_clawback", "R1"),),
            ),
        ),
    ),
    # Tiers 满1000返200 / 满2000返500, A 120000 + B 100000, 50000 granted.
    # B: kept 120000 -> tier 20000 -> 30000 clawed -> 100000 - 30000 = 70000.
    # A: kept 0 -> the remaining 20000 clawed -> 120000 - 20000 = 100000.
    # Sum 170000 = 220000 - 50000 (the whole reward went back).
    sc(
        "order_cashback_tiered_drop_one_tier_then_all",
        order(
            lines=[line("L1", 120000), line("L2", 100000)],
            campaigns=[
                campaign("cmp-cb", "order_cashback", tiers=tiers((100000, 20000), (200000, 50000)))
            ],
            rewards=[reward("R1", "cmp-cb", 50000)],
        ),
        st(
            request(("L2", 1)),
            E(70000, 100000, tenders={"T1": 70000}, ded={"reward_clawback": 30000}),
        ),
        st(
            request(("L1", 1)),
            E(100000, 120000, tenders={"T1": 100000}, ded={"reward_clawback": 20000}),
        ),
    ),
    # Pending reward is cancelled, nothing deducted: 100000 back.
    sc(
        "order_cashback_pending_cancelled_not_deducted",
        order(
            lines=[line("L1", 100000), line("L2", 20000)],
            campaigns=[CB1000],
            rewards=[reward("R1", "cmp-cb", 20000, "pending")],
        ),
        st(
            request(("L1", 1)),
            E(
                100000,
                100000,
                tenders={"T1": 100000},
                effects=(fx("reward_cancel", "R1"),),
                absent=("reward_clawback",),
            ),
        ),
    ),
    # Campaign ended 2026-11-15 (< now): the claw still happens -> 100000 - 20000 = 80000.
    sc(
        "order_cashback_clawed_after_campaign_ended",
        order(
            lines=[line("L1", 100000), line("L2", 20000)],
            campaigns=[
                campaign("cmp-cb", "order_cashback", tiers=tiers((100000, 20000)), ends_at=ENDED)
            ],
            rewards=[reward("R1", "cmp-cb", 20000)],
        ),
        st(
            request(("L1", 1)),
            E(80000, 100000, tenders={"T1": 80000}, ded={"reward_clawback": 20000}),
        ),
    ),
    # 95000 + 10000, granted 20000. Refund 10000: kept 95000 < 100000 -> claw 20000 > 10000
    # -> net -10000 -> needs_manual_review, excess 10000.
    sc(
        "order_cashback_claw_exceeds_refund_needs_manual_review",
        order(
            lines=[line("L1", 95000), line("L2", 10000)],
            campaigns=[CB1000],
            rewards=[reward("R1", "cmp-cb", 20000)],
        ),
        st(
            request(("L2", 1)),
            E(0, 10000, ded={"reward_clawback": 20000}, status="needs_manual_review", excess=10000),
        ),
    ),
    # 3 x 40000. 1 unit: kept paid 80000 < 100000 -> claw 20000 -> 40000 - 20000 = 20000.
    # 2 units: reward already reduced to 0 (read from history) -> 80000, no second claw.
    sc(
        "order_cashback_multi_unit_clawed_only_once",
        order(
            lines=[line("L1", 40000, 3)],
            campaigns=[CB1000],
            rewards=[reward("R1", "cmp-cb", 20000)],
        ),
        st(
            request(("L1", 1)),
            E(20000, 40000, tenders={"T1": 20000}, ded={"reward_clawback": 20000}),
        ),
        st(request(("L1", 2)), E(80000, 80000, tenders={"T1": 80000}, absent=("reward_clawback",))),
    ),
    # Quota of a high_value cashback campaign, frequent refunder: full refund of 120000 ->
    # claw 20000 -> 100000; the quota is withheld (stays used), no release.
    sc(
        "order_cashback_full_refund_quota_withheld_for_frequent_refunder",
        order(
            lines=[line("L1", 120000)],
            campaigns=[
                campaign(
                    "cmp-cb",
                    "order_cashback",
                    tiers=tiers((100000, 20000)),
                    quota_per_customer=1,
                    high_value=True,
                )
            ],
            rewards=[reward("R1", "cmp-cb", 20000)],
        ),
        st(
            request(("L1", 1)),
            E(
                100000,
                120000,
                tenders={"T1": 100000},
                ded={"reward_clawback": 20000},
                effects=(fx("eligibility_withheld", "cmp-cb"),),
                absent=("quota_release",),
            ),
        ),
        snap=snapshot(quotas_used={"cmp-cb": 1}, risk_flags=["frequent_refunder"]),
    ),
    # ---------------------------------------------------------------- cumulative cashback
    # Spend 400000 - 50000 = 350000 >= 300000 -> reward kept -> 50000 back.
    sc(
        "cumulative_cashback_spend_decreases_still_above_threshold",
        order(lines=[line("L1", 50000)], campaigns=[CUM]),
        st(
            request(("L1", 1)),
            E(
                50000,
                50000,
                tenders={"T1": 50000},
                effects=(fx("campaign_spend_decrease", 50000),),
                absent=("reward_clawback",),
            ),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 400000},
            campaign_rewards=[snap_reward("R9", "cmp-cum", 300000, 10000)],
        ),
    ),
    # Spend 320000 - 50000 = 270000 < 300000 -> R9 (granted 10000) clawed -> 40000.
    sc(
        "cumulative_cashback_spend_below_threshold_claws_reward",
        order(lines=[line("L1", 50000)], campaigns=[CUM]),
        st(
            request(("L1", 1)),
            E(
                40000,
                50000,
                tenders={"T1": 40000},
                ded={"reward_clawback": 10000},
                effects=(fx("campaign_spend_decrease", 50000), fx("reward_clawback", "R9")),
            ),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 320000},
            campaign_rewards=[snap_reward("R9", "cmp-cum", 300000, 10000)],
        ),
    ),
    # Same, reward still pending -> cancelled, nothing deducted -> 50000.
    sc(
        "cumulative_cashback_pending_reward_cancelled",
        order(lines=[line("L1", 50000)], campaigns=[CUM]),
        st(
            request(("L1", 1)),
            E(
                50000,
                50000,
                tenders={"T1": 50000},
                effects=(fx("reward_cancel", "R9"),),
                absent=("reward_clawback",),
            ),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 320000},
            campaign_rewards=[snap_reward("R9", "cmp-cum", 300000, 10000, "pending")],
        ),
    ),
    # Tiers 300000 -> 10000 and 500000 -> 30000, both granted; spend 520000 - 50000 = 470000:
    # only R10 (threshold 500000) is above -> 30000 clawed -> 20000; R9 stays.
    sc(
        "cumulative_cashback_only_higher_tier_reward_clawed",
        order(
            lines=[line("L1", 50000)],
            campaigns=[
                campaign(
                    "cmp-cum", "cumulative_cashback", tiers=tiers((300000, 10000), (500000, 30000))
                )
            ],
        ),
        st(
            request(("L1", 1)),
            E(20000, 50000, tenders={"T1": 20000}, ded={"reward_clawback": 30000}),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 520000},
            campaign_rewards=[
                snap_reward("R9", "cmp-cum", 300000, 10000),
                snap_reward("R10", "cmp-cum", 500000, 30000),
            ],
        ),
    ),
    # Campaign counts only L1 (50000); L2 30000 is outside. Refund L2: spend stays 320000 -> 30000.
    # Refund L1: 320000 - 50000 = 270000 < 300000 -> claw 10000 -> 40000.
    sc(
        "cumulative_cashback_counts_only_campaign_lines",
        order(
            lines=[line("L1", 50000), line("L2", 30000)],
            campaigns=[
                campaign(
                    "cmp-cum", "cumulative_cashback", tiers=tiers((300000, 10000)), lines=["L1"]
                )
            ],
        ),
        st(request(("L2", 1)), E(30000, 30000, tenders={"T1": 30000}, absent=("reward_clawback",))),
        st(
            request(("L1", 1)),
            E(40000, 50000, tenders={"T1": 40000}, ded={"reward_clawback": 10000}),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 320000},
            campaign_rewards=[snap_reward("R9", "cmp-cum", 300000, 10000)],
        ),
    ),
    # SPEC §3.5 (issue 16's figures): tiers 800 -> 100 and 1600 -> 300 on cumulative paid spend,
    # spend 1700, 300 granted as one grant. Refund the 500.00 line: spend 1200 reaches the 100
    # tier -> 200 clawed -> 300.00 back (not 300 clawed). Then the 1200.00 line: spend 0 -> the
    # 100 still held is clawed -> 1100.00 back.
    sc(
        "cumulative_cashback_with_tiers_one_grant_drops_to_the_tier_still_reached",
        order(lines=[line("L1", 50000), line("L2", 120000)], campaigns=[CUM_TIERS]),
        st(
            request(("L1", 1)),
            E(
                30000,
                50000,
                tenders={"T1": 30000},
                ded={"reward_clawback": 20000},
                effects=(
                    fx("campaign_spend_decrease", 50000),
                    fx("reward_clawback", "R-one", 20000),
                ),
            ),
        ),
        st(
            request(("L2", 1)),
            E(110000, 120000, tenders={"T1": 110000}, ded={"reward_clawback": 10000}),
            snap=snapshot(
                campaign_spend={"cmp-cum": 120000},
                campaign_rewards=[snap_reward("R-one", "cmp-cum", 160000, 10000)],
            ),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 170000},
            campaign_rewards=[snap_reward("R-one", "cmp-cum", 160000, 30000)],
        ),
    ),
    # Same, recorded as one grant per tier (100 at 800, +200 at 1600): only the 1600 tier's 200
    # is clawed; the 800 tier's grant is untouched.
    sc(
        "cumulative_cashback_with_tiers_one_grant_per_tier_claws_only_the_lost_tier",
        order(lines=[line("L1", 50000), line("L2", 120000)], campaigns=[CUM_TIERS]),
        st(
            request(("L1", 1)),
            E(
                30000,
                50000,
                tenders={"T1": 30000},
                ded={"reward_clawback": 20000},
                effects=(fx("reward_clawback", "R-t2", 20000),),
            ),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 170000},
            campaign_rewards=[
                snap_reward("R-t1", "cmp-cum", 80000, 10000),
                snap_reward("R-t2", "cmp-cum", 160000, 20000),
            ],
        ),
    ),
    # A pending 300 drops to the 100 tier: 200 of it is cancelled, nothing deducted -> 500.00.
    sc(
        "cumulative_cashback_with_tiers_pending_reward_drops_to_the_tier",
        order(lines=[line("L1", 50000), line("L2", 120000)], campaigns=[CUM_TIERS]),
        st(
            request(("L1", 1)),
            E(
                50000,
                50000,
                tenders={"T1": 50000},
                effects=(fx("reward_cancel", "R-one", 20000),),
                absent=("reward_clawback",),
            ),
        ),
        snap=snapshot(
            campaign_spend={"cmp-cum": 170000},
            campaign_rewards=[snap_reward("R-one", "cmp-cum", 160000, 30000, "pending")],
        ),
    ),
    # ---------------------------------------------------------------- participation quotas
    # Flash line L1 10000 (quota 1) + L2 5000. Refund L1 -> 10000, quota released.
    sc(
        "flash_quota_released_when_its_line_is_fully_refunded",
        flash_order(),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 10000}, effects=(fx("quota_release", "cmp-flash"),)),
        ),
        snap=snapshot(quotas_used=FLASH_USED),
    ),
    # 2 x 10000 flash line: first unit -> 10000, a unit is kept -> no release; second -> released.
    sc(
        "flash_quota_kept_on_partial_refund_released_on_last_unit",
        flash_order(quantity=2),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 10000}, absent=("quota_release",))),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 10000}, effects=(fx("quota_release", "cmp-flash"),)),
        ),
        snap=snapshot(quotas_used=FLASH_USED),
    ),
    # Campaign ended 2026-11-15 -> release withheld, told why.
    sc(
        "flash_quota_withheld_campaign_ended",
        flash_order(ends_at=ENDED),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 10000},
                effects=(fx("eligibility_withheld", "cmp-flash"),),
                absent=("quota_release",),
            ),
        ),
        snap=snapshot(quotas_used=FLASH_USED),
    ),
    # ends_at == now: ended (ends_at <= now) -> withheld.
    sc(
        "flash_quota_withheld_campaign_ending_exactly_now",
        flash_order(ends_at=NOW),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 10000},
                effects=(fx("eligibility_withheld", "cmp-flash"),),
                absent=("quota_release",),
            ),
        ),
        snap=snapshot(quotas_used=FLASH_USED),
    ),
    # high_value campaign + frequent_refunder -> withheld.
    sc(
        "flash_quota_withheld_high_value_frequent_refunder",
        flash_order(high_value=True, ends_at=VALID),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 10000},
                effects=(fx("eligibility_withheld", "cmp-flash"),),
                absent=("quota_release",),
            ),
        ),
        snap=snapshot(quotas_used=FLASH_USED, risk_flags=["frequent_refunder"]),
    ),
    # high_value campaign, customer in good standing -> released.
    sc(
        "flash_quota_released_high_value_good_standing",
        flash_order(high_value=True, ends_at=VALID),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 10000},
                effects=(fx("quota_release", "cmp-flash"),),
                absent=("eligibility_withheld",),
            ),
        ),
        snap=snapshot(quotas_used=FLASH_USED),
    ),
    # frequent_refunder, campaign not high_value -> released.
    sc(
        "flash_quota_released_frequent_refunder_not_high_value",
        flash_order(),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 10000},
                effects=(fx("quota_release", "cmp-flash"),),
                absent=("eligibility_withheld",),
            ),
        ),
        snap=snapshot(quotas_used=FLASH_USED, risk_flags=["frequent_refunder"]),
    ),
    # ---------------------------------------------------------------- first purchase
    # 首单立减 1000 on L1 10000 -> P 9000; full refund, no other orders -> 9000 and restored.
    sc(
        "first_purchase_restored_no_other_orders",
        order(
            lines=[line("L1", 10000)],
            adjustments=[
                adjustment(
                    "A1",
                    "first_purchase",
                    1000,
                    ["L1"],
                    source_type="campaign",
                    source_id="cmp-first",
                )
            ],
            campaigns=[FIRST],
        ),
        st(
            request(("L1", 1)),
            E(9000, 9000, tenders={"T1": 9000}, effects=(fx("first_purchase_restored"),)),
        ),
    ),
    # Another paid order not fully refunded -> not restored.
    sc(
        "first_purchase_not_restored_other_paid_order",
        order(lines=[line("L1", 10000)], campaigns=[FIRST]),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 10000}, absent=("first_purchase_restored",)),
        ),
        snap=snapshot(other_orders=[other_order("o-0998")]),
    ),
    # Other orders are fully refunded or unpaid -> restored.
    sc(
        "first_purchase_restored_other_orders_refunded_or_unpaid",
        order(lines=[line("L1", 10000)], campaigns=[FIRST]),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 10000}, effects=(fx("first_purchase_restored"),)),
        ),
        snap=snapshot(
            other_orders=[
                other_order("o-0998", fully_refunded=True),
                other_order("o-0997", paid=False),
            ]
        ),
    ),
    # Restored only in the step that refunds the last goods unit: L1 -> no; L2 -> yes.
    sc(
        "first_purchase_restored_only_with_last_goods_unit",
        order(lines=[line("L1", 10000), line("L2", 5000)], campaigns=[FIRST]),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 10000}, absent=("first_purchase_restored",)),
        ),
        st(
            request(("L2", 1)),
            E(5000, 5000, tenders={"T1": 5000}, effects=(fx("first_purchase_restored"),)),
        ),
    ),
    # high_value first-purchase campaign and a frequent refunder -> withheld.
    sc(
        "first_purchase_withheld_high_value_frequent_refunder",
        order(
            lines=[line("L1", 10000)],
            campaigns=[campaign("cmp-first", "first_purchase", high_value=True)],
        ),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 10000},
                effects=(fx("eligibility_withheld", "cmp-first"),),
                absent=("first_purchase_restored",),
            ),
        ),
        snap=snapshot(risk_flags=["frequent_refunder"]),
    ),
    # ---------------------------------------------------------------- redeemed points tender
    # Card 9000 + 1000 points (mpp 1). Full refund 10000 by 9000:1000 -> 9000 / 1000 (1000 pts).
    sc(
        "points_tender_mpp1_full_refund",
        order(lines=[line("L1", 10000)], tenders=[card("T1", 9000), points_tender("T2", 1000)]),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 9000, "T2": 1000},
                points={"T2": 1000},
                effects=(fx("points_return_redeemed", 1000),),
            ),
        ),
    ),
    # 3 x 10000, card 25000 + 500 points at mpp 10 (5000). Unit 1: 10000 by 25000:5000 ->
    # 8333.33 / 1666.67 -> 8333 / 1667 (the 1 to .67). Points: floor(1667/10) = 166 pts = 1660,
    # leftover 7 -> card (room 16667) -> card 8340.
    # Unit 2: remaining 16660 : 3340 -> 8330 / 1670 exact -> 167 pts. Unit 3: 8330 / 1670, 167 pts.
    # Card 8340 + 8330 + 8330 = 25000; points 166 + 167 + 167 = 500.
    sc(
        "points_tender_mpp10_leftover_minor_units_go_to_card",
        order(
            lines=[line("L1", 10000, 3)], tenders=[card("T1", 25000), points_tender("T2", 500, 10)]
        ),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 8340, "T2": 1660}, points={"T2": 166}),
        ),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 8330, "T2": 1670}, points={"T2": 167}),
        ),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 8330, "T2": 1670}, points={"T2": 167}),
        ),
        policy={"minor_units_per_point": 10},
    ),
    # 3 x 1000, coupon 10 -> P 2990 paid by 299 points at mpp 10, no cash tender.
    # Unit 1: 996 -> 99 pts (990), 6 left, no cash room -> 100 pts (1000); carry 996-1000 = -4.
    # Unit 2: goods 1993 - 996 = 997, carry -4 -> total 993 -> 99 pts + 3 left -> 100 pts; next
    #   carry 1993 - 2000 = -7. Unit 3: goods 997, carry -7 -> 990 -> 99 pts. 100+100+99 = 299.
    sc(
        "points_only_tender_rounded_up_and_carried",
        order(
            lines=[line("L1", 1000, 3)],
            adjustments=[coupon("A1", 10, ["L1"])],
            tenders=[points_tender("T1", 299, 10)],
        ),
        st(
            request(("L1", 1)),
            E(1000, 996, tenders={"T1": 1000}, points={"T1": 100}, rounding=4),
        ),
        st(
            request(("L1", 1)),
            E(1000, 997, carry=-4, tenders={"T1": 1000}, points={"T1": 100}, rounding=7),
        ),
        st(
            request(("L1", 1)),
            E(
                990,
                997,
                carry=-7,
                tenders={"T1": 990},
                points={"T1": 99},
                effects=(fx("coupon_return", "CP-1"),),
            ),
        ),
        snap=snapshot(coupons=[snap_coupon("CP-1", 10)]),
        policy={"minor_units_per_point": 10},
    ),
    # ---------------------------------------------------------------- earned points
    # GP 50000, 500 earned granted, balance 1000. Refund L2 30000: floor(500*30000/50000) = 300.
    sc(
        "earned_points_granted_reversed_in_proportion",
        order(lines=[line("L1", 20000), line("L2", 30000)], points_earned=500),
        st(
            request(("L2", 1)), E(30000, 30000, tenders={"T1": 30000}, reverse_earned=(300, 300, 0))
        ),
        snap=snapshot(points_balance=1000),
    ),
    # SPEC §3.2 example: card 50000, 500 earned granted, balance 120, full refund -> 120 reversed,
    # 380 short (x mpp 1) deducted -> 49620.
    sc(
        "earned_points_shortfall_deducted_from_refund",
        order(lines=[line("L1", 50000)], points_earned=500),
        st(
            request(("L1", 1)),
            E(
                49620,
                50000,
                tenders={"T1": 49620},
                ded={"points_shortfall": 380},
                reverse_earned=(500, 120, 380),
            ),
        ),
        snap=snapshot(points_balance=120),
    ),
    # allow_negative: the whole 500 reversed, balance may go negative, nothing deducted -> 50000.
    sc(
        "earned_points_shortfall_allow_negative",
        order(lines=[line("L1", 50000)], points_earned=500),
        st(
            request(("L1", 1)),
            E(50000, 50000, tenders={"T1": 50000}, effects=(fx("points_reverse_earned", 500),)),
        ),
        snap=snapshot(points_balance=120),
        policy={"points_shortfall": "allow_negative"},
    ),
    # Pending earned points are cancelled, no balance involved -> 50000, no shortfall.
    sc(
        "earned_points_pending_cancelled",
        order(lines=[line("L1", 50000)], points_earned=500, points_status="pending"),
        st(
            request(("L1", 1)),
            E(
                50000,
                50000,
                tenders={"T1": 50000},
                effects=(fx("points_cancel_pending", 500),),
                absent=("points_reverse_earned",),
            ),
        ),
    ),
    # 3 x 10000, 100 earned: cumulative floor(100*10000/30000) = 33, floor(100*20000/30000) = 66
    # -> 33, then 100 - 66 = 34. Balance 1000 -> 967 -> 934, always enough.
    sc(
        "earned_points_cumulative_over_three_units",
        order(lines=[line("L1", 10000, 3)], points_earned=100),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 10000}, reverse_earned=(33, 33, 0))),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 10000}, reverse_earned=(33, 33, 0)),
            snapshot(points_balance=967),
        ),
        st(
            request(("L1", 1)),
            E(10000, 10000, tenders={"T1": 10000}, reverse_earned=(34, 34, 0)),
            snapshot(points_balance=934),
        ),
        snap=snapshot(points_balance=1000),
    ),
    # Card 9000 + 1000 points; 500 earned granted, balance 0. Returned 1000 pts are credited
    # first: 0 + 1000 covers the 500 due -> no shortfall, 10000 back (9000 / 1000 pts).
    sc(
        "redeemed_points_returned_cover_earned_reversal",
        order(
            lines=[line("L1", 10000)],
            tenders=[card("T1", 9000), points_tender("T2", 1000)],
            points_earned=500,
        ),
        st(
            request(("L1", 1)),
            E(
                10000,
                10000,
                tenders={"T1": 9000, "T2": 1000},
                points={"T2": 1000},
                reverse_earned=(500, 500, 0),
            ),
        ),
    ),
    # mpp 10: card 9000 + 100 pts (1000). 500 earned granted, balance 200. Split 10000 by
    # 9000:1000 -> 9000 / 100 pts. Due 500 from 200 + 100 = 300 -> shortfall 200 pts x 10 = 2000
    # taken from the cash share -> card 7000. Total 10000 - 2000 = 8000.
    sc(
        "points_shortfall_with_points_tender_taken_from_cash_mpp10",
        order(
            lines=[line("L1", 10000)],
            tenders=[card("T1", 9000), points_tender("T2", 100, 10)],
            points_earned=500,
        ),
        st(
            request(("L1", 1)),
            E(
                8000,
                10000,
                tenders={"T1": 7000, "T2": 1000},
                points={"T2": 100},
                ded={"points_shortfall": 2000},
                reverse_earned=(500, 300, 200),
            ),
        ),
        snap=snapshot(points_balance=200),
        policy={"minor_units_per_point": 10},
    ),
    # Card 1000 + 9000 pts, 20000 earned granted, balance 0: 9000 returned, shortfall 11000
    # -> the 9000 returned points are already spent on the reversal, so the shortfall must come
    # from the card's 1000 share: refund-rules §4.3 -> needs_manual_review, excess 11000 - 1000.
    sc(
        "points_shortfall_exceeding_cash_needs_manual_review",
        order(
            lines=[line("L1", 10000)],
            tenders=[card("T1", 1000), points_tender("T2", 9000)],
            points_earned=20000,
        ),
        st(
            request(("L1", 1)),
            E(
                0,
                10000,
                ded={"points_shortfall": 11000},
                status="needs_manual_review",
                excess=10000,
            ),
        ),
    ),
    # Card 1000 + 9000 pts, 12000 earned granted, balance 0. Split 10000 -> 1000 / 9000 pts;
    # due 12000 from 0 + 9000 -> shortfall 3000, but the cash share is only 1000 -> §4.3: the
    # plan is needs_manual_review although goods 10000 - 3000 >= 0. The docs do not define
    # `excess` for this case, so it is not asserted.
    sc(
        "points_shortfall_beyond_cash_share_needs_manual_review",
        order(
            lines=[line("L1", 10000)],
            tenders=[card("T1", 1000), points_tender("T2", 9000)],
            points_earned=12000,
        ),
        st(
            request(("L1", 1)),
            E(0, 10000, ded={"points_shortfall": 3000}, status="needs_manual_review"),
        ),
    ),
    # ---------------------------------------------------------------- growth value and tier
    # GP 50000, growth 500. Refund 30000: floor(500*30000/50000) = 300; 1200 -> 900 -> silver
    # (>= 1000) drops to regular.
    sc(
        "growth_reversed_tier_downgrade",
        order(lines=[line("L1", 30000), line("L2", 20000)], growth_value=500),
        st(
            request(("L1", 1)),
            E(
                30000,
                30000,
                tenders={"T1": 30000},
                effects=(fx("growth_reverse", 300), fx("tier_change", "regular")),
            ),
        ),
        snap=snapshot(growth_value=1200),
    ),
    # Same, balance 1500 -> 1200 stays silver: no tier change.
    sc(
        "growth_reversed_tier_kept",
        order(lines=[line("L1", 30000), line("L2", 20000)], growth_value=500),
        st(
            request(("L1", 1)),
            E(
                30000,
                30000,
                tenders={"T1": 30000},
                effects=(fx("growth_reverse", 300),),
                absent=("tier_change",),
            ),
        ),
        snap=snapshot(growth_value=1500),
    ),
    # Balance 100, full refund reverses up to 500 but never below 0 -> regular stays regular.
    sc(
        "growth_reversal_stops_at_zero_no_tier_change",
        order(lines=[line("L1", 50000)], growth_value=500),
        st(request(("L1", 1)), E(50000, 50000, tenders={"T1": 50000}, absent=("tier_change",))),
        snap=snapshot(growth_value=100),
    ),
    # ---------------------------------------------------------------- shipping fee
    # Never shipped (paid): full refund -> 10000 + shipping 1000 = 11000.
    sc(
        "shipping_unshipped_full_refund",
        order(lines=[line("L1", 10000)], shipping_fee=1000, status="paid"),
        st(
            request(("L1", 1)),
            E(
                11000,
                10000,
                shipping=1000,
                tenders={"T1": 11000},
                effects=(fx("shipping_refund", 1000),),
            ),
        ),
    ),
    # Never shipped, two lines: L1 -> 6000; L2 (last goods unit) -> 4000 + 1000 = 5000.
    sc(
        "shipping_unshipped_comes_with_last_goods_unit",
        order(lines=[line("L1", 6000), line("L2", 4000)], shipping_fee=1000, status="paid"),
        st(request(("L1", 1)), E(6000, 6000, tenders={"T1": 6000}, absent=("shipping_refund",))),
        st(request(("L2", 1)), E(5000, 4000, shipping=1000, tenders={"T1": 5000})),
    ),
    # Delivered, changed mind: shipping stays paid -> 10000.
    sc(
        "shipping_kept_after_shipping_changed_mind",
        order(lines=[line("L1", 10000)], shipping_fee=1000),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 10000}, absent=("shipping_refund",))),
    ),
    # Delivered, quality issue (merchant fault) -> 10000 + 1000.
    sc(
        "shipping_refunded_for_merchant_fault",
        order(lines=[line("L1", 10000)], shipping_fee=1000),
        st(
            request(("L1", 1), reason="quality_issue"),
            E(11000, 10000, shipping=1000, tenders={"T1": 11000}),
        ),
    ),
    # Merchant fault in an earlier step counts: L1 wrong_item -> 6000; L2 changed_mind, the
    # last goods unit -> 4000 + 1000 = 5000.
    sc(
        "shipping_refunded_for_merchant_fault_in_earlier_step",
        order(lines=[line("L1", 6000), line("L2", 4000)], shipping_fee=1000),
        st(request(("L1", 1), reason="wrong_item"), E(6000, 6000, tenders={"T1": 6000})),
        st(request(("L2", 1)), E(5000, 4000, shipping=1000, tenders={"T1": 5000})),
    ),
    # shipping_refund = always: delivered, changed mind -> 11000.
    sc(
        "shipping_policy_always",
        order(lines=[line("L1", 10000)], shipping_fee=1000),
        st(request(("L1", 1)), E(11000, 10000, shipping=1000, tenders={"T1": 11000})),
        policy={"shipping_refund": "always"},
    ),
    # shipping_refund = never: even unshipped -> 10000.
    sc(
        "shipping_policy_never",
        order(lines=[line("L1", 10000)], shipping_fee=1000, status="paid"),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 10000}, absent=("shipping_refund",))),
        policy={"shipping_refund": "never"},
    ),
    # Unshipped L1 50000 + gift (declared 2000, 满500赠): gifts are not goods, so refunding L1
    # refunds the last goods unit -> 50000 + 1000 shipping - kept gift 2000 = 49000.
    sc(
        "shipping_gift_not_counted_as_goods",
        order(
            lines=[line("L1", 50000), gift("G1", "cmp-gift", 2000)],
            campaigns=[GIFT500],
            shipping_fee=1000,
            status="paid",
        ),
        st(
            request(("L1", 1)),
            E(49000, 50000, shipping=1000, tenders={"T1": 49000}, ded={"kept_gift": 2000}),
        ),
    ),
    # merchant_fault_reasons = [quality_issue]: wrong_item is then not merchant fault -> 10000.
    sc(
        "shipping_custom_merchant_fault_reasons",
        order(lines=[line("L1", 10000)], shipping_fee=1000),
        st(request(("L1", 1), reason="wrong_item"), E(10000, 10000, tenders={"T1": 10000})),
        policy={"merchant_fault_reasons": ["quality_issue"]},
    ),
    # ---------------------------------------------------------------- return label
    # Prepaid label, changed mind: default cost 1000 deducted -> 9000.
    sc(
        "prepaid_label_deducted_for_changed_mind",
        order(lines=[line("L1", 10000)]),
        st(
            ret(("L1", 1), method="prepaid_label"),
            E(
                9000,
                10000,
                tenders={"T1": 9000},
                ded={"return_label": 1000},
                effects=(fx("return_label"),),
            ),
        ),
    ),
    # Prepaid label, quality issue: merchant pays the label; shipping 800 also back -> 10800.
    sc(
        "prepaid_label_free_for_merchant_fault",
        order(lines=[line("L1", 10000)], shipping_fee=800),
        st(
            ret(("L1", 1), reason="quality_issue", method="prepaid_label"),
            E(10800, 10000, shipping=800, tenders={"T1": 10800}),
        ),
    ),
    # Pickup, return_label_cost 1500 -> 10000 - 1500 = 8500.
    sc(
        "pickup_label_cost_from_policy",
        order(lines=[line("L1", 10000)]),
        st(
            ret(("L1", 1), method="pickup"),
            E(8500, 10000, tenders={"T1": 8500}, ded={"return_label": 1500}),
        ),
        policy={"return_label_cost": 1500},
    ),
    # Self-ship: no label -> 10000.
    sc(
        "self_ship_no_label",
        order(lines=[line("L1", 10000)]),
        st(ret(("L1", 1)), E(10000, 10000, tenders={"T1": 10000}, absent=("return_label",))),
    ),
    # Two separate prepaid returns of a 2 x 10000 line: each 10000 - 1000 = 9000.
    sc(
        "prepaid_label_charged_per_return",
        order(lines=[line("L1", 10000, 2)]),
        st(
            ret(("L1", 1), method="prepaid_label"),
            E(9000, 10000, tenders={"T1": 9000}, ded={"return_label": 1000}),
        ),
        st(
            ret(("L1", 1), method="prepaid_label"),
            E(9000, 10000, tenders={"T1": 9000}, ded={"return_label": 1000}),
        ),
    ),
    # ---------------------------------------------------------------- tenders
    # Card 7000 + wallet 3000. L2 4000 by 7000:3000 -> 2800 / 1200. L1 6000 by 4200:1800 ->
    # 4200 / 1800 (each tender whole).
    sc(
        "two_tenders_partial_refund_splits_by_remaining",
        order(
            lines=[line("L1", 6000), line("L2", 4000)],
            tenders=[card("T1", 7000), wallet("T2", 3000)],
        ),
        st(request(("L2", 1)), E(4000, 4000, tenders={"T1": 2800, "T2": 1200})),
        st(request(("L1", 1)), E(6000, 6000, tenders={"T1": 4200, "T2": 1800})),
    ),
    # 3 x 10000, card 15000 + wallet 10000 + gift card 5000.
    # Unit 1: 5000 / 3333.33 / 1666.67 -> 5000 / 3333 / 1666 + 1 to gift card (.67) -> 1667.
    # Unit 2: remaining 10000 / 6667 / 3333 of 20000 -> 5000 / 3333.5 / 1666.5 -> floors 9999,
    #   tie .5/.5 -> earlier (wallet) -> 5000 / 3334 / 1666.
    # Unit 3: remaining 5000 / 3333 / 1667 = 10000 -> exact. Totals 15000 / 10000 / 5000.
    sc(
        "three_tenders_split_over_three_units",
        order(
            lines=[line("L1", 10000, 3)],
            tenders=[card("T1", 15000), wallet("T2", 10000), gift_card("T3", 5000)],
        ),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 5000, "T2": 3333, "T3": 1667})),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 5000, "T2": 3334, "T3": 1666})),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 5000, "T2": 3333, "T3": 1667})),
    ),
    # Alipay 5000 + wallet 3000 + gift card 2000, full refund -> each gets back what it paid.
    sc(
        "wallet_gift_card_external_full_refund",
        order(
            lines=[line("L1", 6000), line("L2", 4000)],
            tenders=[card("T1", 5000, "alipay"), wallet("T2", 3000), gift_card("T3", 2000)],
        ),
        st(
            request(("L1", 1), ("L2", 1)),
            E(10000, 10000, tenders={"T1": 5000, "T2": 3000, "T3": 2000}),
        ),
    ),
    # ---------------------------------------------------------------- zero-priced line
    # L2 is a zero-priced goods line (not a gift). Refunding it alone moves 0 and is ready.
    sc(
        "zero_priced_line_alone_moves_zero",
        order(lines=[line("L1", 10000), line("L2", 0)]),
        st(request(("L2", 1)), E(0, 0)),
    ),
    # Unshipped, L1 10000 + zero-priced L2, shipping 500: L1 -> 10000 (L2 still kept, so not the
    # last goods unit); L2 -> 0 + shipping 500.
    sc(
        "zero_priced_line_is_goods_and_holds_shipping",
        order(lines=[line("L1", 10000), line("L2", 0)], shipping_fee=500, status="paid"),
        st(request(("L1", 1)), E(10000, 10000, tenders={"T1": 10000}, absent=("shipping_refund",))),
        st(request(("L2", 1)), E(500, 0, shipping=500, tenders={"T1": 500})),
    ),
    # ---------------------------------------------------------------- entitlements / benefits
    # 专属折扣 2000 from entitlement E-EX on L1 20000 -> P 18000; L2 10000 kept. All of E-EX's
    # lines gone -> reactivated (valid).
    sc(
        "exclusive_discount_entitlement_reactivated",
        order(
            lines=[line("L1", 20000), line("L2", 10000)],
            adjustments=[entitlement_discount("A1", 2000, ["L1"], "E-EX")],
        ),
        st(
            request(("L1", 1)),
            E(18000, 18000, tenders={"T1": 18000}, effects=(fx("entitlement_reactivate", "E-EX"),)),
        ),
        snap=snapshot(entitlements=[snap_entitlement("E-EX", "exclusive_discount", VALID)]),
    ),
    # 2 x 10000 with E-EX 2000 -> P 18000: unit 1 -> 9000 (kept unit, no reactivation);
    # unit 2 -> 9000 and reactivated.
    sc(
        "entitlement_not_reactivated_while_a_unit_is_kept",
        order(
            lines=[line("L1", 10000, 2)],
            adjustments=[entitlement_discount("A1", 2000, ["L1"], "E-EX")],
        ),
        st(
            request(("L1", 1)),
            E(9000, 9000, tenders={"T1": 9000}, absent=("entitlement_reactivate",)),
        ),
        st(
            request(("L1", 1)),
            E(9000, 9000, tenders={"T1": 9000}, effects=(fx("entitlement_reactivate", "E-EX"),)),
        ),
        snap=snapshot(entitlements=[snap_entitlement("E-EX", "exclusive_discount", VALID)]),
    ),
    # Expired entitlement follows the coupon rule: reissued (default) -> 18000.
    sc(
        "entitlement_expired_reissued",
        order(
            lines=[line("L1", 20000), line("L2", 10000)],
            adjustments=[entitlement_discount("A1", 2000, ["L1"], "E-EX")],
        ),
        st(
            request(("L1", 1)),
            E(
                18000,
                18000,
                tenders={"T1": 18000},
                effects=(fx("entitlement_reissue"),),
                absent=("entitlement_reactivate",),
            ),
        ),
        snap=snapshot(entitlements=[snap_entitlement("E-EX", "exclusive_discount", EXPIRED)]),
    ),
    # Expired entitlement with expired_coupon = forfeit -> forfeited.
    sc(
        "entitlement_expired_forfeit_policy",
        order(
            lines=[line("L1", 20000), line("L2", 10000)],
            adjustments=[entitlement_discount("A1", 2000, ["L1"], "E-EX")],
        ),
        st(
            request(("L1", 1)),
            E(
                18000,
                18000,
                tenders={"T1": 18000},
                effects=(fx("entitlement_forfeit", "E-EX"),),
                absent=("entitlement_reactivate", "entitlement_reissue"),
            ),
        ),
        snap=snapshot(entitlements=[snap_entitlement("E-EX", "exclusive_discount", EXPIRED)]),
        policy={"expired_coupon": "forfeit"},
    ),
    # Free-shipping pass for the whole order (lines []), never expires: L1 -> 6000, L2 still
    # kept -> not yet; L2 -> 4000 and the pass is reactivated.
    sc(
        "free_shipping_pass_reactivated_on_full_refund",
        order(
            lines=[line("L1", 6000), line("L2", 4000)],
            benefits=[benefit("E-FS", "free_shipping_pass")],
        ),
        st(
            request(("L1", 1)),
            E(6000, 6000, tenders={"T1": 6000}, absent=("entitlement_reactivate",)),
        ),
        st(
            request(("L2", 1)),
            E(4000, 4000, tenders={"T1": 4000}, effects=(fx("entitlement_reactivate", "E-FS"),)),
        ),
        snap=snapshot(entitlements=[snap_entitlement("E-FS", "free_shipping_pass")]),
    ),
    # Member-day quota used by L2 only: refunding L2 reactivates it while L1 is kept.
    sc(
        "member_day_benefit_on_one_line_reactivated",
        order(
            lines=[line("L1", 6000), line("L2", 4000)],
            benefits=[benefit("E-MD", "member_day_quota", ["L2"])],
        ),
        st(
            request(("L2", 1)),
            E(4000, 4000, tenders={"T1": 4000}, effects=(fx("entitlement_reactivate", "E-MD"),)),
        ),
        snap=snapshot(entitlements=[snap_entitlement("E-MD", "member_day_quota", VALID)]),
    ),
]


# --------------------------------------------------------------------------- the test


def _mentions(obj: Any, want: Any) -> bool:
    if isinstance(obj, dict):
        return any(_mentions(v, want) for v in obj.values())
    if isinstance(obj, list):
        return any(_mentions(v, want) for v in obj)
    if isinstance(want, Substr):
        return isinstance(obj, str) and want in obj
    return type(obj) is type(want) and obj == want


def _by_kind(items: list[Json]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item["kind"]] = out.get(item["kind"], 0) + item["amount"]
    return {k: v for k, v in out.items() if v}


def _observed(plan: Json, exp: Expect) -> dict[str, Any]:
    amount = plan["amount"]
    tenders = plan["tenders"]
    effects = plan["effects"]
    seen: dict[str, Any] = {
        "status": plan["status"],
        "total": amount["total"],
        "goods": amount["goods"],
        "give_backs": amount["give_backs"],
        "shipping": amount["shipping"],
        "deductions": amount["deductions"],
        "carry": amount["carry"],
        "rounding": amount["rounding"],
        "tenders": {t["tender_id"]: t["amount"] for t in tenders if t["amount"]},
        "points": {t["tender_id"]: t["points"] for t in tenders if t.get("points")},
        "deductions_by_kind": _by_kind(plan["deductions"]),
        "give_backs_by_kind": _by_kind(plan["give_backs"]),
    }
    if exp.excess is not None:
        seen["excess"] = (plan.get("manual_review") or {}).get("excess")
    if exp.status != "ready":
        seen["manual_review_code"] = (plan.get("manual_review") or {}).get("code")
    for f in exp.effects:
        seen[f"effect {f.type}{list(f.mentions)}"] = any(
            e["type"] == f.type and all(_mentions(e, m) for m in f.mentions) for e in effects
        )
    for t in exp.absent:
        seen[f"no effect {t}"] = all(e["type"] != t for e in effects)
    if exp.reverse_earned is not None:
        rev = [e for e in effects if e["type"] == "points_reverse_earned"]
        seen["points_reverse_earned"] = [
            (e.get("points"), e.get("from_balance"), e.get("shortfall")) for e in rev
        ]
    return seen


def _expected(exp: Expect) -> dict[str, Any]:
    want: dict[str, Any] = {
        "status": exp.status,
        "total": exp.total,
        "goods": exp.goods,
        "give_backs": sum(exp.gb.values()),
        "shipping": exp.shipping,
        "deductions": sum(exp.ded.values()),
        "carry": exp.carry,
        "rounding": exp.rounding,
        "tenders": dict(exp.tenders),
        "points": dict(exp.points),
        "deductions_by_kind": dict(exp.ded),
        "give_backs_by_kind": dict(exp.gb),
    }
    if exp.excess is not None:
        want["excess"] = exp.excess
    if exp.status != "ready":
        want["manual_review_code"] = "plan.deductions_exceed_amount"
    for f in exp.effects:
        want[f"effect {f.type}{list(f.mentions)}"] = True
    for t in exp.absent:
        want[f"no effect {t}"] = True
    if exp.reverse_earned is not None:
        want["points_reverse_earned"] = [exp.reverse_earned]
    return want


def test_scenario_table_is_large_and_uniquely_named() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    assert len(names) >= 45


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    from refundry.domain.json_io import plan_from_json

    history: list[Json] = []
    snap = scenario.snapshot
    for number, step in enumerate(scenario.steps, start=1):
        if step.snapshot is not None:
            snap = step.snapshot
        plan = plan_from_json(
            order=copy.deepcopy(scenario.order),
            snapshot=copy.deepcopy(snap),
            request=copy.deepcopy(step.request),
            history=copy.deepcopy(history),
            policy=copy.deepcopy(scenario.policy),
            now=scenario.now,
        )
        observed = _observed(plan, step.expect)
        expected = _expected(step.expect)
        assert observed == expected, f"step {number} of {scenario.name}"
        history.append(plan)
