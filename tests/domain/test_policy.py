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
