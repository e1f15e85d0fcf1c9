"""Automatic review of a case: the first policy rule that matches decides, and says why.

A pure function of the case's facts and the rules; the services gather the facts (amount from
the plan, evidence, the customer's standing, days since delivery) and record the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refundry.domain.process_policy import ReviewRule

__all__ = ["CaseFacts", "ReviewDecision", "auto_review"]


@dataclass(frozen=True, slots=True)
class CaseFacts:
    reason: str
    kind: str
    amount: int  # the plan's total, minor units
    evidence: int  # files attached
    good_standing: bool
    days_since_delivery: int | None  # None: not delivered (or unknown)


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    decision: str  # approve | reject | agent
    rule: str  # the rule that decided, or "default"
    explain: str


def _matches(rule: ReviewRule, facts: CaseFacts) -> bool:
    if rule.reasons and facts.reason not in rule.reasons:
        return False
    if rule.kinds and facts.kind not in rule.kinds:
        return False
    if rule.max_amount is not None and facts.amount > rule.max_amount:
        return False
    if rule.needs_evidence and facts.evidence == 0:
        return False
    if rule.good_standing and not facts.good_standing:
        return False
    days = facts.days_since_delivery
    if rule.max_days_since_delivery is not None and (
        days is None or days > rule.max_days_since_delivery
    ):
        return False
    return not (
        rule.min_days_since_delivery is not None
        and (days is None or days < rule.min_days_since_delivery)
    )


def auto_review(facts: CaseFacts, rules: Sequence[ReviewRule]) -> ReviewDecision:
    for rule in rules:
        if _matches(rule, facts):
            return ReviewDecision(rule.decision, rule.name, rule.explain or rule.name)
    return ReviewDecision("agent", "default", "no rule decided: the case waits for an agent")
