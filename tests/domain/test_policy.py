from __future__ import annotations

import pytest

from refundry.domain.errors import InvalidInput
from refundry.domain.policy import MERCHANT_FAULT_REASONS, Policy, policy_from_toml


def test_defaults_are_specs() -> None:
    p = Policy()
    assert (p.minor_units_per_point, p.points_shortfall, p.coupon_reissue_days) == (
        1,
        "deduct_from_refund",
        7,
    )
    assert (p.expired_coupon, p.shipping_refund) == ("reissue", "unshipped_or_merchant_fault")
    assert p.merchant_fault_reasons == MERCHANT_FAULT_REASONS


def test_toml_overrides_top_level_or_refund_table() -> None:
    text = '[refund]\nminor_units_per_point = 10\nmerchant_fault_reasons = ["wrong_item"]\n'
    p = policy_from_toml(text)
    assert p.minor_units_per_point == 10
    assert p.merchant_fault_reasons == ("wrong_item",)
    assert policy_from_toml('points_shortfall = "allow_negative"').points_shortfall == (
        "allow_negative"
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("coupon_reissue_dayz = 7", "policy.coupon_reissue_dayz"),
        ('expired_coupon = "keep"', "policy.expired_coupon"),
        ("minor_units_per_point = 0", "policy.minor_units_per_point"),
        ('return_label_cost = "10.00"', "policy.return_label_cost"),
        ('merchant_fault_reasons = ["bored"]', "policy.merchant_fault_reasons"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        policy_from_toml(text)
    assert err.value.code == "policy.invalid"
    assert err.value.field == field


def test_broken_toml_is_policy_invalid() -> None:
    with pytest.raises(InvalidInput) as err:
        policy_from_toml("minor_units_per_point = ")
    assert err.value.code == "policy.invalid"


def test_process_tables_beside_top_level_refund_settings_are_not_refund_settings() -> None:
    text = "coupon_reissue_days = 3\n[review]\nrules = []\n[timers]\nship_within_days = 5\n"
    assert policy_from_toml(text).coupon_reissue_days == 3


def _return_cost(policy: dict[str, object] | None, method: str, reason: str) -> list[object]:
    from refundry.demo import worked_examples as ex
    from refundry.domain.json_io import plan_from_json

    request = {**ex.request(ex.THRESHOLD["id"], "Y", reason=reason)}
    request |= {"kind": "return_and_refund", "return_method": method}
    plan = plan_from_json(
        order=ex.THRESHOLD,
        snapshot=ex.snapshot(),
        request=request,
        now=ex.NOW,
        policy=policy,
    )
    return [(d["amount"], d["rule"]) for d in plan["deductions"] if d["kind"] == "return_label"]


def test_a_pickup_costs_its_own_setting_else_the_labels() -> None:
    pickup = {"return_label_cost": 1000, "return_pickup_cost": 1500}
    assert _return_cost(pickup, "pickup", "changed_mind") == [(1500, "policy.return_pickup_cost")]
    assert _return_cost(pickup, "prepaid_label", "changed_mind") == [
        (1000, "policy.return_label_cost")
    ]
    assert _return_cost(None, "pickup", "changed_mind") == [(1000, "policy.return_label_cost")]
    assert _return_cost(pickup, "pickup", "quality_issue") == []  # the merchant's fault
    assert _return_cost({"return_pickup_cost": 0}, "pickup", "changed_mind") == []
    assert policy_from_toml("return_pickup_cost = 1500").return_pickup_cost == 1500
    with pytest.raises(InvalidInput) as bad:
        policy_from_toml("return_pickup_cost = -1")
    assert bad.value.field == "policy.return_pickup_cost"


def test_an_unset_pickup_cost_may_come_as_json_null() -> None:
    from refundry.domain.policy import policy_from_mapping

    assert policy_from_mapping({"return_pickup_cost": None}).return_pickup_cost is None
    assert policy_from_mapping(Policy().as_dict()) == Policy()
