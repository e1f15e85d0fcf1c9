"""The reasons in words a plan gives for each deduction, give-back and effect: one table of
English templates (id -> text with ``%(name)s`` parameters) that the domain writes every
``reason`` from, and ``read_reason``, which finds the template and parameters back in a
written reason (the pages show it in the customer's language, docs/pages.md).

The plan document keeps only the English text (it is hashed and is the CLI's output), so
the pages read a stored plan's reasons back; ``read_reason`` matches a text against patterns
made from this same table and accepts a reading only if writing it again gives the text byte
for byte, so a reading is never a guess.

A parameter's name says what it holds (``PARAMETERS``): money in minor units, a count, the
shop's own name for something (a campaign, line or tier), a word from a closed list, or
``why``: another reason of this table.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final, Literal, NamedTuple

from refundry.domain.policy import REASONS as REQUEST_REASONS

__all__ = ["PARAMETERS", "TEMPLATES", "Said", "read_reason", "say"]

TEMPLATES: Final[dict[str, str]] = {
    # tenders (SPEC §3.1, §3.2)
    "tender.split": "split over the tenders by what each has not had back (largest remainder)",
    "points.redeemed_back": "points redeemed as payment come back with the money",
    "points.pending_cancelled": "points the order earned are still pending: they are cancelled",
    "points.earned_back": "points earned by the refunded units are taken back",
    "points.earned_back_short": "points earned by the refunded units are taken back; "
    "%(shortfall)s the balance cannot cover are deducted from the refund",
    "points.shortfall": "the balance cannot cover %(points)s earned points",
    # coupons and entitlements (SPEC §3.3, §3.6)
    "coupon.usable_again": "none of the units it was used on is kept: the coupon is usable again",
    "coupon.forfeit": "the coupon expired and policy forfeits expired ones",
    "coupon.reissued": "the coupon expired in the meantime: a new one of the same value is issued",
    "entitlement.usable_again": "none of the units it was used on is kept: "
    "the entitlement is usable again",
    "entitlement.forfeit": "the entitlement expired and policy forfeits expired ones",
    "entitlement.reissued": "the entitlement expired in the meantime: "
    "a new one of the same value is issued",
    # threshold campaigns (SPEC §3.4, §3.5)
    "discount.basket_short": "the kept basket (%(basket)s, %(measure)s) no longer reaches "
    "%(campaign)s's threshold %(threshold)s",
    "discount.deducted": "%(why)s: the discount on the kept units is deducted",
    "discount.given_back": "the %(campaign)s discount held on these units earlier comes back "
    "with them",
    "discount.units_back": "units whose lost discount was deducted earlier are refunded now",
    "gift.kept": "the kept basket no longer reaches %(campaign)s's threshold %(threshold)s "
    "and gift %(line)s is kept",
    "gift.deducted": "%(why)s: its declared value is deducted",
    "gift.given_back": "the gift deducted earlier has been returned",
    "cashback.basket_earns": "the kept basket (%(basket)s, %(measure)s) earns %(target)s "
    "from %(campaign)s, not %(current)s",
    "cashback.spend_earns": "campaign spend %(spend)s earns %(target)s from %(campaign)s, "
    "not the %(holding)s the customer holds",
    "reward.clawed_back": "%(why)s: the granted reward is clawed back",
    "reward.cancelled": "%(why)s: the pending reward is cancelled",
    "spend.decreased": "the refunded units no longer count toward the customer's campaign spend",
    # quotas and eligibility (SPEC §3.5)
    "quota.released": "every unit that used the quota is refunded",
    "eligibility.restored": "the order is refunded and the campaign's rules allow it again",
    "eligibility.campaign_ended": "the campaign has ended",
    "eligibility.frequent_refunder": "refund history restricts high-value campaigns",
    "eligibility.other_paid_order": "another paid order already counts as the first purchase",
    # growth value and tier (SPEC §3.6)
    "growth.reversed": "growth value follows the paid amount of the refunded units",
    "tier.below": "growth value %(growth)s is below what %(tier)s needs",
    # shipping and the return label (SPEC §3 item 7)
    "shipping.refunded": "the last unit of goods is refunded and %(why)s",
    "shipping.always": "policy always refunds shipping",
    "shipping.never_shipped": "the order never shipped",
    "shipping.merchant_fault": "a refund of this order was the merchant's fault (%(reason)s)",
    "label.merchant_pays": "%(reason)s is the merchant's fault: the merchant pays the label",
    "label.customer_pickup": "the pickup of a %(reason)s return is the customer's",
    "label.customer_label": "the prepaid label of a %(reason)s return is the customer's",
    "label.pickup_deducted": "the pickup's cost is deducted from the refund",
    "label.label_deducted": "the label's cost is deducted from the refund",
}

Kind = Literal["money", "count", "name", "word", "why"]

# Every parameter of the templates, by what it holds.
PARAMETERS: Final[dict[str, Kind]] = {
    "basket": "money",  # the kept basket's amount (list or paid, per ``measure``)
    "threshold": "money",
    "target": "money",  # the reward the kept basket or spend earns
    "current": "money",  # the reward held before this step
    "holding": "money",
    "spend": "money",  # cumulative campaign spend after the step
    "points": "count",
    "shortfall": "count",  # points
    "growth": "count",  # growth value
    "campaign": "name",
    "line": "name",
    "tier": "name",
    "measure": "word",  # list | paid
    "reason": "word",  # the request's reason code
    "why": "why",
}

WORDS: Final[dict[str, tuple[str, ...]]] = {
    "measure": ("list", "paid"),
    "reason": REQUEST_REASONS,
}

_PARAM = re.compile(r"%\((\w+)\)s")


class Said(NamedTuple):
    """A reason read back: its template and parameters (a ``why`` is itself a Said)."""

    template: str
    params: dict[str, str | Said]


def say(template: str, **params: int | str | None) -> str:
    """The reason ``template`` in English with ``params``."""
    return TEMPLATES[template] % params


def _group(name: str) -> str:
    kind = PARAMETERS[name]
    if kind in ("money", "count"):
        return rf"(?P<{name}>-?\d+)"
    if kind == "word":
        return f"(?P<{name}>{'|'.join(map(re.escape, WORDS[name]))})"
    return rf"(?P<{name}>.+{'?' if kind == 'name' else ''})"


@cache
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    made = []
    for template_id, text in TEMPLATES.items():
        parts = _PARAM.split(text)  # literal, name, literal, name, …, literal
        pattern = "".join(
            _group(part) if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )
        made.append((template_id, re.compile(pattern, re.DOTALL)))
    return tuple(made)


def read_reason(text: str) -> Said | None:
    """The template and parameters ``text`` was written from, or None when no template of
    this table writes it (a reason from an older release, say)."""
    for template_id, pattern in _patterns():
        found = pattern.fullmatch(text)
        if found is None:
            continue
        params: dict[str, str | Said] = {}
        for name, value in found.groupdict().items():
            if PARAMETERS[name] == "why":
                inner = read_reason(value)
                if inner is None:
                    break
                params[name] = inner
            else:
                params[name] = value
        else:
            if _written(Said(template_id, params)) == text:
                return Said(template_id, params)
    return None


def _written(said: Said) -> str:
    return TEMPLATES[said.template] % {
        name: _written(value) if isinstance(value, Said) else value
        for name, value in said.params.items()
    }
