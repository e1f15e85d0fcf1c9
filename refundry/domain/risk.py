"""Risk control (SPEC §5): a customer's features against the policy's rules, with reasons.

Every rule that matches is kept as a reason, worded with the customer's actual value
("refund_count_30d = 9 ≥ 8: 8 or more refunds in 30 days"), so the decision can be explained
on the case. The decision is the most severe among the matched rules; with none, ``approve``.
Pure: the features are computed by ``refundry.services.customers.risk`` from the store.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from refundry.domain.errors import InvalidInput
from refundry.domain.process_policy import OPERATORS, RISK_DECISIONS, RISK_FEATURES, RiskRule

__all__ = [
    "RESTRICTING",
    "SEVERITY",
    "RiskDecision",
    "RiskFeatures",
    "RuleMatch",
    "assess",
]

# Least to most severe; RISK_DECISIONS lists them in this order.
SEVERITY: dict[str, int] = {
    "approve": 0,  # nothing to do
    "manual_review": 1,  # an agent looks at the case before anything moves
    "restrict_high_value": 2,  # kept out of high-value campaigns for the rule's days
    "suspend": 3,  # refund rights suspended until an agent lifts it
}
assert tuple(SEVERITY) == RISK_DECISIONS

# Decisions that outlive the case: written to risk_restrictions.
RESTRICTING = ("restrict_high_value", "suspend")

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_SYMBOL = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "==": "="}
assert tuple(_COMPARE) == OPERATORS


@dataclass(frozen=True, slots=True)
class RiskFeatures:
    """One customer's behaviour over rolling windows ending at the assessment's "now"."""

    refund_count_30d: int = 0  # refunds applied in the last 30 days
    refund_count_90d: int = 0
    refund_only_count_30d: int = 0  # refund_only cases opened in the last 30 days
    refund_amount_30d: int = 0  # minor units refunded in the last 30 days
    refund_rate_90d_pct: int = 0  # orders paid in 90 days that have a refund, percent (floor)
    order_count_90d: int = 0  # orders paid in the last 90 days
    account_age_days: int = 0

    def value(self, feature: str) -> int:
        if feature not in RISK_FEATURES:
            raise InvalidInput(
                f"unknown risk feature {feature!r}; known: {', '.join(RISK_FEATURES)}",
                code="policy.invalid",
                field="risk.rules.feature",
            )
        result: int = getattr(self, feature)
        return result

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that matched, with its wording for this customer."""

    rule: str
    decision: str
    days: int
    explanation: str


@dataclass(frozen=True, slots=True)
class RiskDecision:
    decision: str  # approve | manual_review | restrict_high_value | suspend
    matches: tuple[RuleMatch, ...] = ()  # every matched rule, in the policy's order

    @property
    def reasons(self) -> tuple[tuple[str, str], ...]:
        """(rule name, explanation with the actual value) per matched rule."""
        return tuple((m.rule, m.explanation) for m in self.matches)

    @property
    def days(self) -> int | None:
        """How long a high-value restriction lasts (the longest of its rules); None otherwise —
        a suspension has no end until an agent lifts it."""
        if self.decision != "restrict_high_value":
            return None
        return max(m.days for m in self.matches if m.decision == self.decision)

    @property
    def restrictions(self) -> tuple[RuleMatch, ...]:
        """The matched rules whose decision outlives the case (restrict / suspend)."""
        return tuple(m for m in self.matches if m.decision in RESTRICTING)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "days": self.days,
            "reasons": [{"rule": m.rule, "explanation": m.explanation} for m in self.matches],
        }


def _explain(rule: RiskRule, actual: int) -> str:
    text = f"{rule.feature} = {actual} {_SYMBOL[rule.op]} {rule.value}"
    return f"{text}: {rule.explain}" if rule.explain else text


def _matches(rule: RiskRule, features: RiskFeatures) -> RuleMatch | None:
    if rule.op not in _COMPARE:
        raise InvalidInput(
            f"op must be one of {' '.join(OPERATORS)}", code="policy.invalid", field=rule.name
        )
    if rule.decision not in SEVERITY:
        raise InvalidInput(
            f"decision must be one of {', '.join(RISK_DECISIONS)}",
            code="policy.invalid",
            field=rule.name,
        )
    actual = features.value(rule.feature)
    if not _COMPARE[rule.op](actual, rule.value):
        return None
    if features.order_count_90d < rule.min_orders_90d:
        return None
    return RuleMatch(rule.name, rule.decision, rule.days, _explain(rule, actual))


def assess(features: RiskFeatures, rules: Iterable[RiskRule]) -> RiskDecision:
    """Every rule is evaluated; the most severe matched decision wins (``approve`` if none)."""
    matched = tuple(m for m in (_matches(r, features) for r in rules) if m is not None)
    decision = max((m.decision for m in matched), key=SEVERITY.__getitem__, default="approve")
    return RiskDecision(decision, matched)
