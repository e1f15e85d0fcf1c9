"""Risk rules against a customer's features: the decision, its reasons and days (SPEC §5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundry.domain.errors import InvalidInput
from refundry.domain.process_policy import (
    DEFAULT_RISK_RULES,
    OPERATORS,
    RISK_DECISIONS,
    RISK_FEATURES,
    RiskRule,
)
from refundry.domain.risk import SEVERITY, RiskFeatures, RuleMatch, assess

CLEAN = RiskFeatures(account_age_days=400)


def rule(
    name: str, feature: str, op: str, value: int, decision: str, days: int = 30, explain: str = ""
) -> RiskRule:
    return RiskRule(name, feature, op, value, decision, days, explain)


@pytest.mark.parametrize(
    ("features", "decision", "reasons", "days"),
    [
        (CLEAN, "approve", (), None),
        (
            RiskFeatures(refund_count_30d=9, account_age_days=400),
            "suspend",
            (("serial_refunder", "refund_count_30d = 9 ≥ 8: 8 or more refunds in 30 days"),),
            None,
        ),
        (
            RiskFeatures(refund_count_30d=7, account_age_days=400),
            "approve",
            (),
            None,
        ),
        (
            # One or two orders say little: 100% of two orders is no pattern yet.
            RiskFeatures(refund_rate_90d_pct=100, order_count_90d=2, account_age_days=400),
            "approve",
            (),
            None,
        ),
        (
            RiskFeatures(refund_rate_90d_pct=60, order_count_90d=3, account_age_days=400),
            "restrict_high_value",
            (
                (
                    "frequent_refunder",
                    "refund_rate_90d_pct = 60 ≥ 60: most orders of the last 90 days were refunded",
                ),
            ),
            30,
        ),
        (
            RiskFeatures(refund_only_count_30d=4, account_age_days=3),
            "manual_review",
            (
                (
                    "refund_only_pattern",
                    "refund_only_count_30d = 4 ≥ 4: 4 or more refund-only requests in 30 days",
                ),
                (
                    "new_account_large",
                    "account_age_days = 3 < 7: the account is less than a week old",
                ),
            ),
            None,
        ),
        (
            RiskFeatures(
                refund_count_30d=8, refund_rate_90d_pct=75, order_count_90d=4, account_age_days=6
            ),
            "suspend",
            (
                ("serial_refunder", "refund_count_30d = 8 ≥ 8: 8 or more refunds in 30 days"),
                (
                    "frequent_refunder",
                    "refund_rate_90d_pct = 75 ≥ 60: most orders of the last 90 days were refunded",
                ),
                (
                    "new_account_large",
                    "account_age_days = 6 < 7: the account is less than a week old",
                ),
            ),
            None,
        ),
    ],
    ids=[
        "clean",
        "serial",
        "below_serial",
        "rate_on_too_few_orders",
        "rate_at_threshold",
        "two_reviews",
        "all_at_once",
    ],
)
def test_default_rules_decide_with_worded_reasons(
    features: RiskFeatures,
    decision: str,
    reasons: tuple[tuple[str, str], ...],
    days: int | None,
) -> None:
    result = assess(features, DEFAULT_RISK_RULES)
    assert (result.decision, result.reasons, result.days) == (decision, reasons, days)


@pytest.mark.parametrize(
    ("op", "value", "matched", "symbol"),
    [
        (">=", 5, True, "≥"),
        (">=", 6, False, "≥"),
        (">", 4, True, ">"),
        (">", 5, False, ">"),
        ("<=", 5, True, "≤"),
        ("<=", 4, False, "≤"),
        ("<", 6, True, "<"),
        ("<", 5, False, "<"),
        ("==", 5, True, "="),
        ("==", 4, False, "="),
    ],
)
def test_each_operator_compares_the_actual_value(
    op: str, value: int, matched: bool, symbol: str
) -> None:
    result = assess(
        RiskFeatures(refund_amount_30d=5),
        [rule("r", "refund_amount_30d", op, value, "manual_review")],
    )
    expected = (("r", f"refund_amount_30d = 5 {symbol} {value}"),) if matched else ()
    assert result.reasons == expected
    assert result.decision == ("manual_review" if matched else "approve")


def test_restriction_lasts_the_longest_of_its_matched_rules() -> None:
    rules = [
        rule("a", "refund_count_90d", ">=", 1, "restrict_high_value", days=14),
        rule("b", "refund_count_90d", ">=", 2, "restrict_high_value", days=45),
        rule("c", "refund_count_90d", ">=", 3, "restrict_high_value", days=90),  # not matched
        rule("d", "refund_count_90d", ">=", 1, "manual_review", days=365),
    ]
    result = assess(RiskFeatures(refund_count_90d=2), rules)
    assert (result.decision, result.days) == ("restrict_high_value", 45)
    assert [m.rule for m in result.restrictions] == ["a", "b"]


def test_suspension_has_no_days_but_keeps_the_restriction_beside_it() -> None:
    rules = [
        rule("rate", "refund_rate_90d_pct", ">=", 50, "restrict_high_value", days=20, explain="x"),
        rule("serial", "refund_count_30d", ">=", 3, "suspend", days=30, explain="y"),
    ]
    result = assess(RiskFeatures(refund_count_30d=3, refund_rate_90d_pct=100), rules)
    assert (result.decision, result.days) == ("suspend", None)
    assert result.restrictions == (
        RuleMatch("rate", "restrict_high_value", 20, "refund_rate_90d_pct = 100 ≥ 50: x"),
        RuleMatch("serial", "suspend", 30, "refund_count_30d = 3 ≥ 3: y"),
    )


def test_decision_as_recorded_on_the_case() -> None:
    result = assess(RiskFeatures(refund_count_30d=9), DEFAULT_RISK_RULES)
    assert result.to_json() == {
        "decision": "suspend",
        "days": None,
        "reasons": [
            {
                "rule": "serial_refunder",
                "explanation": "refund_count_30d = 9 ≥ 8: 8 or more refunds in 30 days",
            },
            {
                "rule": "new_account_large",
                "explanation": "account_age_days = 0 < 7: the account is less than a week old",
            },
        ],
        "not_applied": [],
    }


UNKNOWN_AGE = RiskFeatures(account_age_days=None, known_for_days=0)


def test_an_unknown_account_age_is_not_a_new_account() -> None:
    """The shop sent no account creation time and refundry saw the customer today: the
    default new-account rule is not applied, and the decision says so."""
    result = assess(UNKNOWN_AGE, DEFAULT_RISK_RULES)
    assert result.decision == "approve"
    assert result.matches == ()
    assert result.to_json()["not_applied"] == [
        {
            "rule": "new_account_large",
            "explanation": "account_age_days unknown (the shop sent no account creation time; "
            "first seen 0 days ago): not applied",
        }
    ]


def test_the_shops_account_age_decides_when_sent() -> None:
    new = assess(RiskFeatures(account_age_days=2, known_for_days=0), DEFAULT_RISK_RULES)
    assert new.decision == "manual_review"
    assert new.not_applied == ()
    old = assess(RiskFeatures(account_age_days=400, known_for_days=0), DEFAULT_RISK_RULES)
    assert (old.decision, old.matches, old.not_applied) == ("approve", (), ())


@pytest.mark.parametrize(
    ("op", "value", "known_for", "outcome"),
    [
        ("<", 7, 30, "no"),  # seen 30 days ago: surely not under 7 days old
        ("<", 7, 3, "unknown"),
        ("<=", 7, 7, "unknown"),
        ("<=", 7, 8, "no"),
        (">=", 90, 100, "match"),  # seen 100 days ago: surely 90 days old or more
        (">=", 90, 10, "unknown"),
        (">", 90, 90, "unknown"),
        (">", 90, 91, "match"),
        ("==", 5, 6, "no"),
        ("==", 5, 5, "unknown"),
    ],
)
def test_an_unknown_age_is_decided_by_its_lower_bound_when_it_can_be(
    op: str, value: int, known_for: int, outcome: str
) -> None:
    features = RiskFeatures(account_age_days=None, known_for_days=known_for)
    result = assess(features, [rule("age", "account_age_days", op, value, "manual_review")])
    got = "match" if result.matches else "unknown" if result.not_applied else "no"
    assert got == outcome
    if result.matches:
        assert result.matches[0].explanation.startswith(
            f"account_age_days ≥ {known_for} (known since first seen)"
        )


def test_unknown_feature_in_an_unchecked_rule_is_a_policy_error() -> None:
    with pytest.raises(InvalidInput) as err:
        assess(CLEAN, [rule("bad", "refund_count_7d", ">=", 1, "suspend")])
    assert err.value.code == "policy.invalid"


def test_severity_order_is_the_policys() -> None:
    assert sorted(RISK_DECISIONS, key=SEVERITY.__getitem__) == [
        "approve",
        "manual_review",
        "restrict_high_value",
        "suspend",
    ]


features_st = st.builds(
    RiskFeatures, **{name: st.integers(min_value=0, max_value=200) for name in RISK_FEATURES}
)
rules_st = st.builds(
    RiskRule,
    name=st.text(alphabet="abcxyz_", min_size=1, max_size=8),
    feature=st.sampled_from(RISK_FEATURES),
    op=st.sampled_from(OPERATORS),
    value=st.integers(min_value=0, max_value=200),
    decision=st.sampled_from(RISK_DECISIONS),
    days=st.integers(min_value=0, max_value=365),
)


@given(
    features=features_st,
    rules=st.lists(rules_st, max_size=8),
    decision=st.sampled_from(RISK_DECISIONS),
    feature=st.sampled_from(RISK_FEATURES),
    slack=st.integers(min_value=0, max_value=50),
    position=st.integers(min_value=0, max_value=8),
)
def test_adding_a_matching_rule_never_lowers_the_decision(
    features: RiskFeatures,
    rules: list[RiskRule],
    decision: str,
    feature: str,
    slack: int,
    position: int,
) -> None:
    before = assess(features, rules)
    matching = rule("added", feature, ">=", features.value(feature) - slack, decision)
    after = assess(features, [*rules[:position], matching, *rules[position:]])
    assert SEVERITY[after.decision] >= SEVERITY[before.decision]
    assert SEVERITY[after.decision] >= SEVERITY[decision]
    assert len(after.reasons) == len(before.reasons) + 1


REFERENCE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


@given(features=features_st, rules=st.lists(rules_st, max_size=8))
def test_decision_is_the_most_severe_matched_rule(
    features: RiskFeatures, rules: list[RiskRule]
) -> None:
    result = assess(features, rules)
    hits = [r for r in rules if REFERENCE[r.op](getattr(features, r.feature), r.value)]
    assert [m.rule for m in result.matches] == [r.name for r in hits]
    for m, r in zip(result.matches, hits, strict=True):
        assert m.explanation.startswith(f"{r.feature} = {getattr(features, r.feature)} ")
        assert (m.decision, m.days) == (r.decision, r.days)
    most = max((SEVERITY[r.decision] for r in hits), default=0)
    assert SEVERITY[result.decision] == most
