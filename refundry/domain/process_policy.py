"""The case-process policy: review rules, timers, 极速退款, risk rules, identity checks.

Read from the same TOML file as the refund policy, from its ``[review]``, ``[timers]``,
``[express]``, ``[risk]``, ``[identity]`` and ``[returns]`` tables (docs/policy.md). Every
setting has a default, so an empty file is a working policy.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from refundry.domain.errors import InvalidInput

__all__ = [
    "ExpressPolicy",
    "IdentityPolicy",
    "ProcessPolicy",
    "ReviewRule",
    "RiskRule",
    "Timers",
    "process_policy_from_mapping",
    "process_policy_from_toml",
]

REVIEW_DECISIONS = ("approve", "reject", "agent")
RISK_DECISIONS = ("approve", "manual_review", "restrict_high_value", "suspend")
RISK_FEATURES = (
    "refund_count_30d",  # refunds applied for the customer in the last 30 days
    "refund_count_90d",
    "refund_only_count_30d",  # refund_only cases opened in the last 30 days
    "refund_amount_30d",  # minor units refunded in the last 30 days
    "refund_rate_90d_pct",  # refunded orders / paid orders over 90 days, in percent
    "order_count_90d",  # orders paid in the last 90 days
    "account_age_days",
)
OPERATORS = (">=", ">", "<=", "<", "==")


@dataclass(frozen=True, slots=True)
class ReviewRule:
    """Matches when every condition given holds; the first matching rule decides."""

    name: str
    decision: str  # approve | reject | agent
    reasons: tuple[str, ...] = ()  # any of these reasons (empty: any reason)
    kinds: tuple[str, ...] = ()  # refund_only / return_and_refund (empty: any)
    max_amount: int | None = None  # plan total at most this (minor units)
    needs_evidence: bool = False  # at least one photo / file attached
    good_standing: bool = False  # no risk flag and refund rights not suspended
    max_days_since_delivery: int | None = None
    min_days_since_delivery: int | None = None
    explain: str = ""  # the words recorded on the case


@dataclass(frozen=True, slots=True)
class Timers:
    merchant_silent_hours: int = 48  # under_review with no decision -> approved
    ship_within_days: int = 7  # awaiting_return with no tracking number -> closed
    inspect_within_hours: int = 72  # received but not inspected -> refunded as asked
    complete_after_hours: int = 0  # refunded -> completed

    def running(self) -> tuple[tuple[str, str, str, timedelta], ...]:
        """Each timer as (the case state it runs in, its name, the action it takes, how long
        after the case entered the state it fires): the one reading of these settings for
        the sweep (services/cases/timers.py) and the deadlines a case shows."""
        return (
            (
                "under_review",
                "merchant_silent",
                "approve",
                timedelta(hours=self.merchant_silent_hours),
            ),
            ("awaiting_return", "ship_within", "expire", timedelta(days=self.ship_within_days)),
            ("received", "inspect_within", "refund", timedelta(hours=self.inspect_within_hours)),
            ("refunded", "complete_after", "complete", timedelta(hours=self.complete_after_hours)),
        )


@dataclass(frozen=True, slots=True)
class ExpressPolicy:
    """极速退款: money before the goods are back, for trusted customers."""

    enabled: bool = True
    max_amount: int = 50000  # plan total at most this
    min_account_age_days: int = 90
    max_refunds_90d: int = 2


@dataclass(frozen=True, slots=True)
class RiskRule:
    name: str
    feature: str
    op: str
    value: int
    decision: str  # approve | manual_review | restrict_high_value | suspend
    days: int = 30  # how long a restriction lasts
    explain: str = ""
    # The rule holds only for customers with at least this many orders paid in 90 days (a rate
    # over one or two orders says little: one refunded order is 100%).
    min_orders_90d: int = 0


DEFAULT_RISK_RULES = (
    RiskRule(
        "serial_refunder",
        "refund_count_30d",
        ">=",
        8,
        "suspend",
        30,
        "8 or more refunds in 30 days",
    ),
    RiskRule(
        "frequent_refunder",
        "refund_rate_90d_pct",
        ">=",
        60,
        "restrict_high_value",
        30,
        "most orders of the last 90 days were refunded",
        min_orders_90d=3,
    ),
    RiskRule(
        "refund_only_pattern",
        "refund_only_count_30d",
        ">=",
        4,
        "manual_review",
        0,
        "4 or more refund-only requests in 30 days",
    ),
    RiskRule(
        "new_account_large",
        "account_age_days",
        "<",
        7,
        "manual_review",
        0,
        "the account is less than a week old",
    ),
)

DEFAULT_REVIEW_RULES = (
    ReviewRule(
        "wrong_item_with_photo",
        "approve",
        reasons=("wrong_item",),
        needs_evidence=True,
        good_standing=True,
        explain="wrong item with a photo, customer in good standing",
    ),
    ReviewRule(
        "small_amount",
        "approve",
        max_amount=10000,
        good_standing=True,
        max_days_since_delivery=30,
        explain="100.00 or less within 30 days of delivery, customer in good standing",
    ),
    ReviewRule(
        "late_changed_mind",
        "reject",
        reasons=("changed_mind",),
        min_days_since_delivery=8,
        explain="changed mind more than 7 days after delivery (7天无理由 has passed)",
    ),
)


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    otp_above_amount: int = 100000  # a case whose plan moves more needs a one-time code
    code_ttl_seconds: int = 300
    code_length: int = 6
    max_attempts: int = 5  # wrong codes before submission is locked
    lock_minutes: int = 30
    resend_cooldown_seconds: int = 60  # between two codes to one customer
    codes_per_hour: int = 5  # codes one customer may be sent in any hour
    codes_per_phone_per_hour: int = 10  # codes one number may be sent in any hour (SMS pumping)


@dataclass(frozen=True, slots=True)
class ProcessPolicy:
    review_rules: tuple[ReviewRule, ...] = DEFAULT_REVIEW_RULES
    timers: Timers = Timers()
    express: ExpressPolicy = ExpressPolicy()
    risk_rules: tuple[RiskRule, ...] = DEFAULT_RISK_RULES
    identity: IdentityPolicy = IdentityPolicy()
    return_address: str = "refundry returns centre, 1 Warehouse Road, Shanghai"
    merchant_addresses: dict[str, str] = field(default_factory=dict)

    def address_for(self, merchant_id: str) -> str:
        return self.merchant_addresses.get(merchant_id, self.return_address)


def _build(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise InvalidInput(
                f"unknown setting {key!r}", code="policy.invalid", field=f"{where}.{key}"
            )
        values[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**values)
    except TypeError as exc:
        raise InvalidInput(str(exc), code="policy.invalid", field=where) from exc


def _check_rule(rule: Any, where: str, decisions: tuple[str, ...]) -> None:
    if rule.decision not in decisions:
        raise InvalidInput(
            f"decision must be one of {', '.join(decisions)}",
            code="policy.invalid",
            field=f"{where}.decision",
        )
    if isinstance(rule, RiskRule):
        if rule.feature not in RISK_FEATURES:
            raise InvalidInput(
                f"feature must be one of {', '.join(RISK_FEATURES)}",
                code="policy.invalid",
                field=f"{where}.feature",
            )
        if rule.op not in OPERATORS:
            raise InvalidInput(
                f"op must be one of {' '.join(OPERATORS)}",
                code="policy.invalid",
                field=f"{where}.op",
            )


def process_policy_from_mapping(data: dict[str, Any]) -> ProcessPolicy:
    values: dict[str, Any] = {}
    review = data.get("review", {})
    if "rules" in review:
        rules = []
        for i, raw in enumerate(review["rules"]):
            rule = _build(ReviewRule, raw, f"review.rules[{i}]")
            _check_rule(rule, f"review.rules[{i}]", REVIEW_DECISIONS)
            rules.append(rule)
        values["review_rules"] = tuple(rules)
    for table, cls in (
        ("timers", Timers),
        ("express", ExpressPolicy),
        ("identity", IdentityPolicy),
    ):
        if table in data:
            values[table] = _build(cls, data[table], table)
    if "rules" in data.get("risk", {}):
        rules_r = []
        for i, raw in enumerate(data["risk"]["rules"]):
            rule_r = _build(RiskRule, raw, f"risk.rules[{i}]")
            _check_rule(rule_r, f"risk.rules[{i}]", RISK_DECISIONS)
            rules_r.append(rule_r)
        values["risk_rules"] = tuple(rules_r)
    returns = data.get("returns", {})
    if "address" in returns:
        values["return_address"] = returns["address"]
    if "merchant_addresses" in returns:
        values["merchant_addresses"] = dict(returns["merchant_addresses"])
    return ProcessPolicy(**values)


def process_policy_from_toml(text: str) -> ProcessPolicy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"not valid TOML: {exc}", code="policy.invalid") from exc
    return process_policy_from_mapping(data)
