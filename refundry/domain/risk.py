"""Risk control (SPEC §5): a customer's features against the policy's rules, with reasons.

Every rule that matches is kept as a reason, worded with the customer's actual value
("refund_count_30d = 9 ≥ 8: 8 or more refunds in 30 days"), so the decision can be explained
on the case. The decision is the most severe among the matched rules; with none, ``approve``.
Pure: the features are computed by ``refundry.services.customers.risk`` from the store.

The account's age is the shop's to tell (its account creation time, sent with the customer).
When the shop sent none, the age is unknown: refundry only knows the account is at least as
old as the first time it saw the customer (``known_for_days``). A rule that this lower bound
decides is decided by it (``account_age_days < 7`` is false for a customer seen 30 days ago;
``account_age_days >= 90`` is true for one seen 100 days ago); any other rule on the age is not
applied, and the decision says so (``not_applied``) instead of treating the account as new.
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
    "RuleNote",
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
    # Days since the account's creation time the shop sent; None: the shop sent none.
    account_age_days: int | None = 0
    known_for_days: int = 0  # days since refundry first saw the customer: a lower bound of the age

    @property
    def account_age_at_least(self) -> int:
        """The age the account surely has: the shop's figure, else the lower bound."""
        return self.known_for_days if self.account_age_days is None else self.account_age_days

    def value(self, feature: str) -> int | None:
        if feature not in RISK_FEATURES:
            raise InvalidInput(
                f"unknown risk feature {feature!r}; known: {', '.join(RISK_FEATURES)}",
                code="policy.invalid",
                field="risk.rules.feature",
            )
        result: int | None = getattr(self, feature)
        return result

    def to_json(self) -> dict[str, int | None]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that matched, with its wording for this customer."""

    rule: str
    decision: str
    days: int
    explanation: str


@dataclass(frozen=True, slots=True)
class RuleNote:
    """A rule that was not applied because the feature it reads is unknown, and why."""

    rule: str
    explanation: str


@dataclass(frozen=True, slots=True)
class RiskDecision:
    decision: str  # approve | manual_review | restrict_high_value | suspend
    matches: tuple[RuleMatch, ...] = ()  # every matched rule, in the policy's order
    not_applied: tuple[RuleNote, ...] = ()  # rules on a feature the shop did not tell

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
            "not_applied": [
                {"rule": n.rule, "explanation": n.explanation} for n in self.not_applied
            ],
        }


def _explain(rule: RiskRule, actual: int, *, at_least: bool = False) -> str:
    value = f"≥ {actual} (known since first seen)" if at_least else f"= {actual}"
    text = f"{rule.feature} {value} {_SYMBOL[rule.op]} {rule.value}"
    return f"{text}: {rule.explain}" if rule.explain else text


def _bounded(rule: RiskRule, lower: int) -> bool | None:
    """Whether the rule holds for every value from ``lower`` up (True), for none (False), or
    depends on the unknown value (None)."""
    holds = _COMPARE[rule.op](lower, rule.value)
    if rule.op in (">=", ">"):
        return True if holds else None
    if rule.op in ("<", "<="):
        return None if holds else False
    return False if lower > rule.value else None  # ==


def _matches(rule: RiskRule, features: RiskFeatures) -> RuleMatch | RuleNote | None:
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
    if features.order_count_90d < rule.min_orders_90d:
        return None
    if actual is None:  # the account's age, unknown: only its lower bound is known
        lower = features.known_for_days
        outcome = _bounded(rule, lower)
        if outcome is None:
            return RuleNote(
                rule.name,
                f"{rule.feature} unknown (the shop sent no account creation time; first seen "
                f"{lower} days ago): not applied",
            )
        if not outcome:
            return None
        return RuleMatch(rule.name, rule.decision, rule.days, _explain(rule, lower, at_least=True))
    if not _COMPARE[rule.op](actual, rule.value):
        return None
    return RuleMatch(rule.name, rule.decision, rule.days, _explain(rule, actual))


def assess(features: RiskFeatures, rules: Iterable[RiskRule]) -> RiskDecision:
    """Every rule is evaluated; the most severe matched decision wins (``approve`` if none).
    A rule on an unknown feature is listed in ``not_applied``."""
    outcomes = [_matches(r, features) for r in rules]
    matched = tuple(m for m in outcomes if isinstance(m, RuleMatch))
    notes = tuple(m for m in outcomes if isinstance(m, RuleNote))
    decision = max((m.decision for m in matched), key=SEVERITY.__getitem__, default="approve")
    return RiskDecision(decision, matched, notes)
