"""The refund policy: every choice SPEC leaves to the shop, as one typed, immutable object.

Defaults are SPEC's. A shop overrides them in a TOML file (see docs/policy.md)::

    minor_units_per_point = 1
    points_shortfall = "deduct_from_refund"   # or "allow_negative"
    expired_coupon = "reissue"                # or "forfeit"
    coupon_reissue_days = 7
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from typing import Any

from refundry.domain.errors import InvalidInput

__all__ = ["MERCHANT_FAULT_REASONS", "REASONS", "Policy", "policy_from_mapping", "policy_from_toml"]

REASONS = ("quality_issue", "wrong_item", "not_received", "merchant_breach", "changed_mind")
MERCHANT_FAULT_REASONS = ("quality_issue", "wrong_item", "not_received", "merchant_breach")

_CHOICES: dict[str, tuple[str, ...]] = {
    "points_shortfall": ("deduct_from_refund", "allow_negative"),
    "expired_coupon": ("reissue", "forfeit"),
    "shipping_refund": ("unshipped_or_merchant_fault", "always", "never"),
}


@dataclass(frozen=True, slots=True)
class Policy:
    minor_units_per_point: int = 1  # 1: 100 points = 1 yuan
    points_shortfall: str = "deduct_from_refund"  # when the balance cannot cover a reversal
    points_vesting_days: int = 7  # earned points stay pending this long after delivery
    expired_coupon: str = "reissue"  # what a returned but expired coupon becomes
    coupon_reissue_days: int = 7  # validity of a reissued coupon or entitlement
    shipping_refund: str = "unshipped_or_merchant_fault"  # when the shipping fee comes back
    merchant_fault_reasons: tuple[str, ...] = MERCHANT_FAULT_REASONS
    return_label_cost: int = 1000  # minor units deducted for a prepaid label (or a pickup)
    # Minor units deducted for a pickup, when the carrier charges it differently from a label;
    # None (not set): return_label_cost.
    return_pickup_cost: int | None = None

    def is_merchant_fault(self, reason: str) -> bool:
        return reason in self.merchant_fault_reasons

    def return_cost(self, method: str) -> tuple[int, str]:
        """What the customer pays for a ``prepaid_label`` or ``pickup`` return (not at fault),
        and the setting that says so."""
        if method == "pickup" and self.return_pickup_cost is not None:
            return self.return_pickup_cost, "return_pickup_cost"
        return self.return_label_cost, "return_label_cost"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


_INT_FIELDS = {
    "minor_units_per_point",
    "points_vesting_days",
    "coupon_reissue_days",
    "return_label_cost",
    "return_pickup_cost",
}


_OPTIONAL = {"return_pickup_cost"}


def policy_from_mapping(data: dict[str, Any], *, where: str = "policy") -> Policy:
    """Build a Policy from a mapping, naming the first bad field in the error."""
    known = {f.name for f in fields(Policy)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}"
        if key not in known:
            raise InvalidInput(f"unknown policy setting {key!r}", code="policy.invalid", field=path)
        if key in _OPTIONAL and value is None:
            pass  # unset (JSON null; TOML leaves the key out)
        elif key in _INT_FIELDS:
            if (
                type(value) is not int
                or value < 0
                or (key == "minor_units_per_point" and value < 1)
            ):
                raise InvalidInput(
                    "must be a non-negative integer", code="policy.invalid", field=path
                )
        elif key in _CHOICES:
            if value not in _CHOICES[key]:
                raise InvalidInput(
                    f"must be one of {', '.join(_CHOICES[key])}", code="policy.invalid", field=path
                )
        elif key == "merchant_fault_reasons":
            if not isinstance(value, list) or any(r not in REASONS for r in value):
                raise InvalidInput(
                    f"must be a list of reasons from {', '.join(REASONS)}",
                    code="policy.invalid",
                    field=path,
                )
            value = tuple(value)
        values[key] = value
    return Policy(**values)


def policy_from_toml(text: str) -> Policy:
    """Parse a policy file's text; settings sit at the top level or under ``[refund]``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"not valid TOML: {exc}", code="policy.invalid") from exc
    # Refund settings sit under [refund] or at the top level; other tables ([review], [risk]…)
    # belong to the case-process policy (refundry.domain.process_policy).
    section = data.get("refund")
    if section is None:
        section = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if not isinstance(section, dict):
        raise InvalidInput("[refund] must be a table", code="policy.invalid", field="refund")
    return policy_from_mapping(section)
