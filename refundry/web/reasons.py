"""A plan's reasons in the page's language: the reason the plan wrote in English, read back to
its template and parameters (refundry/domain/reasons.py), then the template's translation
with money written per locale and words translated. English pages show the plan's own text.

The messages are the domain's templates themselves (``%(name)s`` parameters) and the words
below; the zh-CN catalog translates them like the templates' messages (tests/web/test_i18n.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from refundry.domain.reasons import PARAMETERS, TEMPLATES, Said, read_reason

__all__ = ["REQUEST_REASONS", "messages", "reason_in_words", "risk_in_words"]

# The request's reason codes (the pages' reason macro and the reasons that name them).
REQUEST_REASONS: Final[dict[str, str]] = {
    "quality_issue": "Quality problem",
    "wrong_item": "Wrong item sent",
    "not_received": "Not received",
    "merchant_breach": "Not as described",
    "changed_mind": "Changed my mind",
}
# A threshold campaign's measure: what the kept basket is counted at.
MEASURES: Final[dict[str, str]] = {"list": "list price", "paid": "amount paid"}
_WORDS: Final[dict[str, dict[str, str]]] = {"reason": REQUEST_REASONS, "measure": MEASURES}


# A risk rule's features (domain/process_policy.py RISK_FEATURES), named for the desk.
RISK_FEATURES: Final[dict[str, str]] = {
    "refund_count_30d": "Refunds in the last 30 days",
    "refund_count_90d": "Refunds in the last 90 days",
    "refund_only_count_30d": "Refund-only cases in the last 30 days",
    "refund_amount_30d": "Amount refunded in the last 30 days",
    "refund_rate_90d_pct": "Refund rate over 90 days, in percent",
    "order_count_90d": "Orders in the last 90 days",
    "account_age_days": "Account age (days)",
}
RISK_MATCHED: Final = "%(feature)s: %(actual)s (the rule: %(op)s %(threshold)s)"
RISK_AT_LEAST: Final = (
    "%(feature)s: at least %(actual)s, counted from when refundry first saw the customer "
    "(the rule: %(op)s %(threshold)s)"
)
RISK_EXPLAINED: Final = "%(reason)s: %(explain)s"  # the policy's own words after the reason
# How domain/risk.py writes a matched rule: "feature = 9 ≥ 8" or "feature ≥ 30 (known since
# first seen) < 90", then ": " and the policy's own explanation when it has one.
_RISK = re.compile(
    r"(?P<feature>[a-z0-9_]+) (?:= (?P<actual>-?\d+)|≥ (?P<lower>-?\d+) \(known since first "
    r"seen\)) (?P<op>[≥≤<>=]) (?P<threshold>-?\d+)(?:: (?P<explain>.*))?",
    re.S,
)


def messages() -> set[str]:
    """Every message this module translates."""
    return {
        *TEMPLATES.values(),
        *REQUEST_REASONS.values(),
        *MEASURES.values(),
        *RISK_FEATURES.values(),
        RISK_MATCHED,
        RISK_AT_LEAST,
        RISK_EXPLAINED,
    }


def risk_in_words(text: str, gettext: Callable[[str], str], money: Callable[[int], str]) -> str:
    """A risk reason (domain/risk.py's wording) through ``gettext``: the feature named, its
    value (money for an amount) and the rule; the policy's own explanation after it as the
    shop wrote it. The text as it is when it is not one domain/risk.py wrote."""
    found = _RISK.fullmatch(text)
    if found is None or found["feature"] not in RISK_FEATURES:
        return text
    feature = found["feature"]
    amount = feature == "refund_amount_30d"

    def shown(value: str) -> str:
        return money(int(value)) if amount else value

    actual = found["actual"] if found["actual"] is not None else found["lower"]
    words = gettext(RISK_MATCHED if found["actual"] is not None else RISK_AT_LEAST) % {
        "feature": gettext(RISK_FEATURES[feature]),
        "actual": shown(actual),
        "op": found["op"],
        "threshold": shown(found["threshold"]),
    }
    if not found["explain"]:
        return words
    return gettext(RISK_EXPLAINED) % {"reason": words, "explain": found["explain"]}


def reason_in_words(text: str, gettext: Callable[[str], str], money: Callable[[int], str]) -> str:
    """``text`` (a plan's reason) through ``gettext``, amounts written by ``money``; the text
    as it is when no template writes it."""
    said = read_reason(text)
    return text if said is None else _words(said, gettext, money)


def _words(said: Said, gettext: Callable[[str], str], money: Callable[[int], str]) -> str:
    shown: dict[str, str] = {}
    for name, value in said.params.items():
        kind = PARAMETERS[name]
        if isinstance(value, Said):
            shown[name] = _words(value, gettext, money)
        elif kind == "money":
            shown[name] = money(int(value))
        elif kind == "word":
            shown[name] = gettext(_WORDS[name][value])
        else:
            shown[name] = value
    return gettext(TEMPLATES[said.template]) % shown
