"""The customer snapshot a plan reads (SPEC §2): balances, benefits, campaign state, risk."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["CampaignReward", "CustomerSnapshot", "Entitlement", "OtherOrder", "TierLevel"]

FREQUENT_REFUNDER = "frequent_refunder"


@dataclass(frozen=True, slots=True)
class Entitlement:
    """A coupon (with its face ``value``) or another entitlement the customer holds."""

    id: str
    kind: str = "coupon"
    value: int = 0
    valid_until: datetime | None = None  # None: never expires

    def is_valid(self, now: datetime) -> bool:
        return self.valid_until is None or now < self.valid_until


@dataclass(frozen=True, slots=True)
class CampaignReward:
    id: str
    campaign_id: str
    threshold: int
    amount: int
    status: str  # "granted" | "pending" | "cancelled" | "clawed_back"


@dataclass(frozen=True, slots=True)
class OtherOrder:
    id: str
    paid: bool
    fully_refunded: bool


@dataclass(frozen=True, slots=True)
class TierLevel:
    name: str
    min_growth: int


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    customer_id: str
    locale: str = "zh-CN"
    points_balance: int = 0
    wallet_balance: int = 0
    growth_value: int = 0
    tier_table: tuple[TierLevel, ...] = ()
    coupons: dict[str, Entitlement] = field(default_factory=dict)
    entitlements: dict[str, Entitlement] = field(default_factory=dict)
    campaign_spend: dict[str, int] = field(default_factory=dict)
    campaign_rewards: tuple[CampaignReward, ...] = ()
    quotas_used: dict[str, int] = field(default_factory=dict)
    other_orders: tuple[OtherOrder, ...] = ()
    risk_flags: frozenset[str] = frozenset()

    def tier_for(self, growth: int) -> str | None:
        best: TierLevel | None = None
        for level in self.tier_table:
            if growth >= level.min_growth and (best is None or level.min_growth > best.min_growth):
                best = level
        return best.name if best else None

    @property
    def is_frequent_refunder(self) -> bool:
        return FREQUENT_REFUNDER in self.risk_flags
