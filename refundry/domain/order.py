"""The paid order as refundry sees it (SPEC §2), with its apportionment worked out once.

An ``Order`` is immutable. Building one checks what makes it refundable at all (ids unique,
adjustments on known goods lines, no line paid below zero, tenders summing to what was paid) and
precomputes each adjustment's share per line (优惠分摊) and each line's paid amount, so that a
plan only does per-refund work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from refundry.domain.errors import OrderRejected
from refundry.domain.money import split_largest_remainder

__all__ = [
    "Adjustment",
    "AdjustmentSource",
    "Benefit",
    "Campaign",
    "CampaignKind",
    "Line",
    "Order",
    "OrderStatus",
    "PointsEarned",
    "Reward",
    "Tender",
    "TenderKind",
    "Tier",
]


class OrderStatus(StrEnum):
    UNPAID = "unpaid"  # never paid: nothing to refund
    PAID = "paid"  # paid, not yet shipped: shipping fee comes back with the last unit
    SHIPPED = "shipped"  # handed to the carrier
    DELIVERED = "delivered"  # the customer has it
    COMPLETED = "completed"  # confirmed received / after-sales window running
    CANCELLED = "cancelled"  # cancelled before payment: nothing to refund


REFUNDABLE_STATUSES = frozenset(
    {OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED}
)


class TenderKind(StrEnum):
    EXTERNAL = "external"  # card, Alipay, WeChat Pay… through the payment gateway
    WALLET = "wallet"  # the shop's stored balance
    GIFT_CARD = "gift_card"  # a gift card balance
    POINTS = "points"  # points redeemed as payment


class CampaignKind(StrEnum):
    THRESHOLD_DISCOUNT = "threshold_discount"  # 满减: discount while the basket reaches it
    GIFT_WITH_PURCHASE = "gift_with_purchase"  # 满赠: a free gift line
    ORDER_CASHBACK = "order_cashback"  # 满返 on this order, tiered
    CUMULATIVE_CASHBACK = "cumulative_cashback"  # rewards on spend across orders
    PARTICIPATION_QUOTA = "participation_quota"  # flash-sale limit and the like
    FIRST_PURCHASE = "first_purchase"  # 首单: one per customer


THRESHOLD_KINDS = frozenset({CampaignKind.THRESHOLD_DISCOUNT, CampaignKind.GIFT_WITH_PURCHASE})


@dataclass(frozen=True, slots=True)
class Line:
    id: str
    sku: str
    title: str
    merchant_id: str
    quantity: int
    unit_price: int
    gift_of: str | None = None
    declared_value: int = 0

    @property
    def is_gift(self) -> bool:
        return self.gift_of is not None

    @property
    def list_subtotal(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class AdjustmentSource:
    type: str  # "coupon" | "campaign" | "entitlement"
    id: str


@dataclass(frozen=True, slots=True)
class Adjustment:
    id: str
    kind: str
    amount: int
    lines: tuple[str, ...]
    source: AdjustmentSource


@dataclass(frozen=True, slots=True)
class Tender:
    id: str
    kind: TenderKind
    amount: int
    points: int = 0
    method: str | None = None
    gateway_txn_id: str | None = None


@dataclass(frozen=True, slots=True)
class Tier:
    threshold: int
    reward: int


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    kind: CampaignKind
    measure: str  # "list" | "paid"
    threshold: int = 0
    tiers: tuple[Tier, ...] = ()
    lines: tuple[str, ...] = ()  # empty: the default set for its kind (see Order.campaign_lines)
    quota_per_customer: int | None = None
    high_value: bool = False
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def has_ended(self, now: datetime) -> bool:
        return self.ends_at is not None and self.ends_at <= now

    def reward_for(self, basket: int) -> int:
        """The highest tier reward a basket of this size reaches (threshold inclusive)."""
        best = 0
        for tier in self.tiers:
            if basket >= tier.threshold and tier.reward > best:
                best = tier.reward
        return best


@dataclass(frozen=True, slots=True)
class Reward:
    id: str
    campaign_id: str
    amount: int
    status: str  # "granted" | "pending", as it is now


@dataclass(frozen=True, slots=True)
class Benefit:
    id: str
    kind: str
    lines: tuple[str, ...] = ()  # empty: the whole order


@dataclass(frozen=True, slots=True)
class PointsEarned:
    points: int = 0
    status: str = "granted"  # "granted" | "pending"


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    customer_id: str
    currency: str
    status: OrderStatus
    lines: tuple[Line, ...]
    adjustments: tuple[Adjustment, ...] = ()
    tenders: tuple[Tender, ...] = ()
    shipping_fee: int = 0
    points_earned: PointsEarned = PointsEarned()
    growth_value: int = 0
    campaigns: tuple[Campaign, ...] = ()
    rewards: tuple[Reward, ...] = ()
    benefits: tuple[Benefit, ...] = ()
    paid_at: datetime | None = None
    delivered_at: datetime | None = None  # when the customer got it (review rules count from it)
    minor_units_per_point: int = 1
    # Worked out in __post_init__:
    line_index: dict[str, int] = field(init=False, repr=False, compare=False)
    shares: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)
    paid: dict[str, int] = field(init=False, repr=False, compare=False)
    goods_paid: int = field(init=False, repr=False, compare=False)
    campaign_by_id: dict[str, Campaign] = field(init=False, repr=False, compare=False)
    campaign_lines: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    # (line id, quantity, unit price, paid) of goods lines, overall and per campaign: hot loops
    goods: tuple[tuple[str, int, int, int], ...] = field(init=False, repr=False, compare=False)
    campaign_goods: dict[str, tuple[tuple[str, int, int, int], ...]] = field(
        init=False, repr=False, compare=False
    )
    quantity: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            if line.id in index:
                raise OrderRejected(f"line id {line.id!r} appears twice", code="order.duplicate_id")
            index[line.id] = i
        campaigns = {c.id: c for c in self.campaigns}
        if len(campaigns) != len(self.campaigns):
            raise OrderRejected("a campaign id appears twice", code="order.duplicate_id")
        for line in self.lines:
            if line.gift_of is not None:
                gift_campaign = campaigns.get(line.gift_of)
                if gift_campaign is None or gift_campaign.kind != CampaignKind.GIFT_WITH_PURCHASE:
                    raise OrderRejected(
                        f"gift line {line.id!r} names {line.gift_of!r}, which is not a "
                        "gift_with_purchase campaign of this order",
                        code="order.unknown_campaign",
                    )
        shares = self._apportion(index, campaigns)
        paid: dict[str, int] = {}
        for line in self.lines:
            p = line.list_subtotal - sum(s.get(line.id, 0) for s in shares.values())
            if p < 0:
                raise OrderRejected(
                    f"discounts leave line {line.id!r} at {p} (below zero)",
                    code="order.line_below_zero",
                )
            paid[line.id] = p
        goods_paid = sum(paid[ln.id] for ln in self.lines if not ln.is_gift)
        self._check_tenders(goods_paid)
        object.__setattr__(self, "line_index", index)
        object.__setattr__(self, "shares", shares)
        object.__setattr__(self, "paid", paid)
        object.__setattr__(self, "goods_paid", goods_paid)
        object.__setattr__(self, "campaign_by_id", campaigns)
        campaign_lines = self._campaign_lines(index, campaigns)
        object.__setattr__(self, "campaign_lines", campaign_lines)
        facts = {
            ln.id: (ln.id, ln.quantity, ln.unit_price, paid[ln.id])
            for ln in self.lines
            if not ln.is_gift
        }
        object.__setattr__(self, "goods", tuple(facts.values()))
        object.__setattr__(
            self,
            "campaign_goods",
            {cid: tuple(facts[i] for i in ids) for cid, ids in campaign_lines.items()},
        )
        object.__setattr__(self, "quantity", {ln.id: ln.quantity for ln in self.lines})
        for benefit in self.benefits:
            self._check_goods_lines(benefit.lines, index, f"benefit {benefit.id!r}")

    def _check_goods_lines(self, ids: tuple[str, ...], index: dict[str, int], what: str) -> None:
        for line_id in ids:
            i = index.get(line_id)
            if i is None:
                raise OrderRejected(
                    f"{what} names unknown line {line_id!r}", code="order.unknown_line"
                )
            if self.lines[i].is_gift:
                raise OrderRejected(
                    f"{what} names gift line {line_id!r}", code="order.unknown_line"
                )

    def _apportion(
        self, index: dict[str, int], campaigns: dict[str, Campaign]
    ) -> dict[str, dict[str, int]]:
        shares: dict[str, dict[str, int]] = {}
        seen: set[str] = set()
        for adj in self.adjustments:
            if adj.id in seen:
                raise OrderRejected(
                    f"adjustment id {adj.id!r} appears twice", code="order.duplicate_id"
                )
            seen.add(adj.id)
            what = f"adjustment {adj.id!r}"
            self._check_goods_lines(adj.lines, index, what)
            if adj.source.type == "campaign" and adj.source.id not in campaigns:
                raise OrderRejected(
                    f"{what} names campaign {adj.source.id!r}, which the order does not list",
                    code="order.unknown_campaign",
                )
            ordered = sorted(set(adj.lines), key=index.__getitem__)
            weights = [self.lines[index[lid]].list_subtotal for lid in ordered]
            if adj.amount and sum(weights) == 0:
                raise OrderRejected(
                    f"{what} sits only on lines with no list price",
                    code="order.adjustment_without_base",
                )
            parts = split_largest_remainder(adj.amount, weights)
            shares[adj.id] = dict(zip(ordered, parts, strict=True))
        return shares

    def _check_tenders(self, goods_paid: int) -> None:
        due = goods_paid + self.shipping_fee
        total = sum(t.amount for t in self.tenders)
        if total != due:
            raise OrderRejected(
                f"tenders sum to {total} but the order's goods paid plus shipping is {due}",
                code="order.tenders_mismatch",
            )
        ids = {t.id for t in self.tenders}
        if len(ids) != len(self.tenders):
            raise OrderRejected("a tender id appears twice", code="order.duplicate_id")
        for t in self.tenders:
            if t.kind == TenderKind.POINTS and t.points * self.minor_units_per_point != t.amount:
                raise OrderRejected(
                    f"points tender {t.id!r}: {t.points} points × {self.minor_units_per_point} "
                    f"minor units per point is not its amount {t.amount}",
                    code="order.points_tender_mismatch",
                )

    def _campaign_lines(
        self, index: dict[str, int], campaigns: dict[str, Campaign]
    ) -> dict[str, tuple[str, ...]]:
        goods = tuple(ln.id for ln in self.lines if not ln.is_gift)
        result: dict[str, tuple[str, ...]] = {}
        for c in self.campaigns:
            if c.lines:
                self._check_goods_lines(c.lines, index, f"campaign {c.id!r}")
                chosen = set(c.lines)
            elif c.kind == CampaignKind.THRESHOLD_DISCOUNT:
                chosen = {
                    lid
                    for a in self.adjustments
                    if a.source.type == "campaign" and a.source.id == c.id
                    for lid in a.lines
                }
            else:
                chosen = set(goods)
            result[c.id] = tuple(lid for lid in goods if lid in chosen)
        return result

    def line(self, line_id: str) -> Line:
        return self.lines[self.line_index[line_id]]

    @property
    def goods_lines(self) -> tuple[Line, ...]:
        return tuple(ln for ln in self.lines if not ln.is_gift)
