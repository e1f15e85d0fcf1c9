"""Requests and orders the engine must refuse, each with the exact error code.

The request codes are those of docs/refund-rules.md §10 and `order.line_below_zero` of §1. The
other order-validation codes (tenders not summing, unknown line in an adjustment, points tender
amount, malformed input) are required behaviour of docs/plan-json.md but their codes are not
named by the docs; they are pinned here to the engine's names (`ORDER_CODES_NOT_IN_DOCS`) so a
rename is a visible decision.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from refundry.domain.errors import RefundryError

try:  # tests/domain is a package
    from .scenario_builders import (
        NOW,
        Json,
        campaign,
        card,
        coupon,
        gift,
        line,
        order,
        points_tender,
        request,
        snap_coupon,
        snapshot,
    )
except ImportError:  # pragma: no cover - tests/domain on sys.path (rootdir-less layout)
    from scenario_builders import (
        NOW,
        Json,
        campaign,
        card,
        coupon,
        gift,
        line,
        order,
        points_tender,
        request,
        snap_coupon,
        snapshot,
    )

ORDER_CODES_NOT_IN_DOCS = {
    "tenders": "order.tenders_mismatch",
    "adjustment_line": "order.unknown_line",
    "points_tender": "order.points_tender_mismatch",
    "adjustment_without_base": "order.adjustment_without_base",
    "schema": "order.invalid",
}


def _plan(
    order_: Json,
    req: Json,
    *,
    snap: Json | None = None,
    history: list[Json] | None = None,
    policy: Json | None = None,
) -> Json:
    from refundry.domain.json_io import plan_from_json

    result: Json = plan_from_json(
        order=copy.deepcopy(order_),
        snapshot=copy.deepcopy(snap if snap is not None else snapshot()),
        request=copy.deepcopy(req),
        history=copy.deepcopy(history or []),
        policy=copy.deepcopy(policy),
        now=NOW,
    )
    return result


def _refused(code: str, order_: Json, req: Json, **kw: Any) -> None:
    with pytest.raises(RefundryError) as caught:
        _plan(order_, req, **kw)
    assert caught.value.code == code


# L1: 3 x 10000, L2: 1 x 5000, paid 35000 by card.
BASE = order(lines=[line("L1", 10000, 3), line("L2", 5000)])


# --------------------------------------------------------------------------- §10 requests


def test_empty_request_is_refused() -> None:
    _refused("refund.empty_request", BASE, request())


@pytest.mark.parametrize("quantity", [0, -1, -3], ids=["zero", "minus_one", "minus_three"])
def test_non_positive_quantity_is_refused(quantity: int) -> None:
    _refused("refund.invalid_quantity", BASE, request(("L1", quantity)))


@pytest.mark.parametrize("quantity", ["1", True, None], ids=["string", "bool", "null"])
def test_quantity_that_is_not_an_integer_is_refused(quantity: Any) -> None:
    _refused("refund.invalid_quantity", BASE, request(("L1", quantity)))


def test_same_line_twice_is_refused() -> None:
    _refused("refund.duplicate_line", BASE, request(("L1", 1), ("L1", 1)))


def test_unknown_line_is_refused() -> None:
    _refused("refund.unknown_line", BASE, request(("L9", 1)))


def test_line_fully_refunded_before_is_exhausted() -> None:
    first = _plan(BASE, request(("L2", 1)))
    _refused("refund.units_exhausted", BASE, request(("L2", 1)), history=[first])


def test_multi_unit_line_exhausted_after_several_steps() -> None:
    first = _plan(BASE, request(("L1", 2)))
    second = _plan(BASE, request(("L1", 1)), history=[first])
    _refused("refund.units_exhausted", BASE, request(("L1", 1)), history=[first, second])


def test_more_units_than_the_line_has_is_refused() -> None:
    _refused("refund.quantity_exceeds_remaining", BASE, request(("L1", 4)))


def test_more_units_than_remain_after_earlier_refund_is_refused() -> None:
    # 3 units, 2 refunded before: 1 left, 2 asked.
    first = _plan(BASE, request(("L1", 2)))
    _refused("refund.quantity_exceeds_remaining", BASE, request(("L1", 2)), history=[first])


def test_remaining_units_are_still_refundable() -> None:
    # Control for the two tests above: exactly the unit that is left goes through.
    first = _plan(BASE, request(("L1", 2)))
    plan = _plan(BASE, request(("L1", 1)), history=[first])
    assert plan["status"] == "ready"


@pytest.mark.parametrize("status", ["unpaid", "cancelled"])
def test_order_never_paid_is_not_refundable(status: str) -> None:
    _refused(
        "order.not_refundable",
        order(lines=[line("L1", 10000, 3), line("L2", 5000)], status=status),
        request(("L1", 1)),
    )


def test_request_for_another_order_is_refused() -> None:
    _refused("request.order_mismatch", BASE, request(("L1", 1), order_id="o-2"))


# --------------------------------------------------------------------------- order validation


def test_discount_leaving_a_line_below_zero_is_refused() -> None:
    # Coupon 2000 on L1 of list 1000 -> P_L1 = -1000 (§1).
    _refused(
        "order.line_below_zero",
        order(
            lines=[line("L1", 1000), line("L2", 10000)],
            adjustments=[coupon("A1", 2000, ["L1"])],
        ),
        request(("L2", 1)),
        snap=snapshot(coupons=[snap_coupon("CP-1", 2000)]),
    )


def test_discount_over_several_lines_leaving_one_below_zero_is_refused() -> None:
    # Coupon 5000 over L1 1000 + L2 1000 + L3 8000 (10000): shares 500 / 500 / 4000, fine.
    # A second coupon 1000 on L1 alone -> P_L1 = 1000 - 500 - 1000 = -500.
    _refused(
        "order.line_below_zero",
        order(
            lines=[line("L1", 1000), line("L2", 1000), line("L3", 8000)],
            adjustments=[
                coupon("A1", 5000, ["L1", "L2", "L3"]),
                coupon("A2", 1000, ["L1"], "CP-2"),
            ],
        ),
        request(("L3", 1)),
        snap=snapshot(coupons=[snap_coupon("CP-1", 5000), snap_coupon("CP-2", 1000)]),
    )


@pytest.mark.parametrize("paid", [34999, 35001, 36000], ids=["one_short", "one_over", "plus_ship"])
def test_tenders_not_summing_to_goods_paid_plus_shipping_are_refused(paid: int) -> None:
    # GP 35000, shipping 0: 36000 would only be right with a 1000 shipping fee.
    _refused(
        ORDER_CODES_NOT_IN_DOCS["tenders"],
        order(lines=[line("L1", 10000, 3), line("L2", 5000)], tenders=[card("T1", paid)]),
        request(("L1", 1)),
    )


def test_tenders_ignoring_the_shipping_fee_are_refused() -> None:
    # GP 35000 + shipping 1000 = 36000, but the tenders say 35000.
    _refused(
        ORDER_CODES_NOT_IN_DOCS["tenders"],
        order(
            lines=[line("L1", 10000, 3), line("L2", 5000)],
            tenders=[card("T1", 30000), card("T2", 5000)],
            shipping_fee=1000,
        ),
        request(("L1", 1)),
    )


def test_adjustment_naming_an_unknown_line_is_refused() -> None:
    _refused(
        ORDER_CODES_NOT_IN_DOCS["adjustment_line"],
        order(
            lines=[line("L1", 10000, 3), line("L2", 5000)],
            adjustments=[coupon("A1", 1000, ["L1", "L9"])],
        ),
        request(("L1", 1)),
        snap=snapshot(coupons=[snap_coupon("CP-1", 1000)]),
    )


def test_adjustment_naming_a_gift_line_is_refused() -> None:
    # "An adjustment may only name goods lines."
    _refused(
        ORDER_CODES_NOT_IN_DOCS["adjustment_line"],
        order(
            lines=[line("L1", 60000), gift("G1", "cmp-gift", 3000)],
            adjustments=[coupon("A1", 1000, ["L1", "G1"])],
            campaigns=[campaign("cmp-gift", "gift_with_purchase", threshold=50000)],
        ),
        request(("L1", 1)),
        snap=snapshot(coupons=[snap_coupon("CP-1", 1000)]),
    )


def test_adjustment_only_on_zero_priced_lines_is_refused() -> None:
    # §1: "If every line of an adjustment has list subtotal 0 the adjustment is refused."
    _refused(
        ORDER_CODES_NOT_IN_DOCS["adjustment_without_base"],
        order(lines=[line("L1", 0), line("L2", 10000)], adjustments=[coupon("A1", 500, ["L1"])]),
        request(("L2", 1)),
        snap=snapshot(coupons=[snap_coupon("CP-1", 500)]),
    )


def test_points_tender_amount_not_points_times_mpp_default_is_refused() -> None:
    # 100 points at the default 1 minor unit per point are worth 100, not 1000.
    bad_points = {"id": "T2", "kind": "points", "amount": 1000, "points": 100}
    _refused(
        ORDER_CODES_NOT_IN_DOCS["points_tender"],
        order(
            lines=[line("L1", 10000, 3), line("L2", 5000)],
            tenders=[card("T1", 34000), bad_points],
        ),
        request(("L1", 1)),
    )


def test_points_tender_amount_not_points_times_mpp_10_is_refused() -> None:
    # Policy mpp 10: 100 points are worth 1000; an amount of 100 is wrong.
    bad_points = {"id": "T2", "kind": "points", "amount": 100, "points": 100}
    _refused(
        ORDER_CODES_NOT_IN_DOCS["points_tender"],
        order(
            lines=[line("L1", 10000, 3), line("L2", 5000)],
            tenders=[card("T1", 34900), bad_points],
        ),
        request(("L1", 1)),
        policy={"minor_units_per_point": 10},
    )


def test_points_tender_valid_at_mpp_1_is_wrong_at_mpp_10() -> None:
    # The same order is accepted at mpp 1 (1000 pts = 1000) and refused at mpp 10 (= 10000).
    good_at_1 = order(
        lines=[line("L1", 10000, 3), line("L2", 5000)],
        tenders=[card("T1", 34000), points_tender("T2", 1000)],
    )
    assert _plan(good_at_1, request(("L1", 1)))["status"] == "ready"
    _refused(
        ORDER_CODES_NOT_IN_DOCS["points_tender"],
        good_at_1,
        request(("L1", 1)),
        policy={"minor_units_per_point": 10},
    )


@pytest.mark.parametrize("currency", ["cny", "YUAN", "", "C1Y"])
def test_currency_not_an_iso_4217_code_is_refused(currency: str) -> None:
    _refused(
        ORDER_CODES_NOT_IN_DOCS["schema"],
        order(lines=[line("L1", 10000, 3), line("L2", 5000)], currency=currency),
        request(("L1", 1)),
    )


def test_currency_on_an_adjustment_is_an_unknown_field() -> None:
    # Amounts are in the order's currency; a per-adjustment currency is not part of the schema
    # and unknown fields are rejected.
    adj = {**coupon("A1", 1000, ["L1"]), "currency": "USD"}
    _refused(
        ORDER_CODES_NOT_IN_DOCS["schema"],
        order(lines=[line("L1", 10000, 3), line("L2", 5000)], adjustments=[adj]),
        request(("L1", 1)),
        snap=snapshot(coupons=[snap_coupon("CP-1", 1000)]),
    )


def test_unknown_order_field_is_refused() -> None:
    _refused(ORDER_CODES_NOT_IN_DOCS["schema"], {**BASE, "colour": "red"}, request(("L1", 1)))


def test_external_tender_without_gateway_txn_id_is_refused() -> None:
    tender = {"id": "T1", "kind": "external", "method": "card", "amount": 35000}
    _refused(
        ORDER_CODES_NOT_IN_DOCS["schema"],
        order(lines=[line("L1", 10000, 3), line("L2", 5000)], tenders=[tender]),
        request(("L1", 1)),
    )


def test_refusal_codes_are_stable_strings() -> None:
    # Every pinned code is area.name, as STYLE.md asks of error codes.
    for code in ORDER_CODES_NOT_IN_DOCS.values():
        area, _, name = code.partition(".")
        assert area == "order" and name and name == name.lower()


def test_history_naming_a_line_the_order_lacks_is_history_invalid() -> None:
    from refundry.demo import worked_examples as ex
    from refundry.domain.errors import InvalidInput
    from refundry.domain.json_io import plan_from_json

    first = plan_from_json(
        order=ex.THRESHOLD, snapshot=ex.snapshot(), now=ex.NOW, request=ex.request("o-500-100", "Y")
    )
    first["request"]["lines"][0]["line_id"] = "NOPE"
    with pytest.raises(InvalidInput) as err:
        plan_from_json(
            order=ex.THRESHOLD,
            snapshot=ex.snapshot(),
            now=ex.NOW,
            request=ex.request("o-500-100", "X"),
            history=[first],
        )
    assert (err.value.code, err.value.field) == ("history.invalid", "history[0].request.lines")


def test_history_over_refunding_a_tender_is_history_invalid() -> None:
    from refundry.demo import worked_examples as ex
    from refundry.domain.errors import InvalidInput
    from refundry.domain.json_io import plan_from_json

    first = plan_from_json(
        order=ex.THRESHOLD, snapshot=ex.snapshot(), now=ex.NOW, request=ex.request("o-500-100", "Y")
    )
    first["tenders"][0]["amount"] = 50001
    with pytest.raises(InvalidInput) as err:
        plan_from_json(
            order=ex.THRESHOLD,
            snapshot=ex.snapshot(),
            now=ex.NOW,
            request=ex.request("o-500-100", "X"),
            history=[first],
        )
    assert err.value.code == "history.invalid"
