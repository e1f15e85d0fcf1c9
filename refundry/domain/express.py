"""What a customer owes when goods paid by 极速退款 fail inspection (SPEC §4).

An express refund applies the plan for every unit asked before the goods arrive. When the
inspection then refuses some of them (``fail``: all; ``partial``: those not accepted), the
customer holds money for goods it keeps: that is the case's debt, for an agent to recover.

Each refused unit owes what the step moved for it: the line's goods money of the step split by
cumulative rounding over the units, the accepted units taken first (SPEC §1), so the accepted and
refused parts add up to what the step moved for the line exactly. The step's deductions,
give-backs and shipping stay with the accepted units; the debt is capped at what the step moved
in all, since the customer cannot owe more than it received.

An agent then settles the debt in parts (``debt_after``): each part recovered (from the wallet,
or paid back outside refundry) or written off lowers what is owed, never below zero; a part
that is not a whole positive number of minor units within what is owed is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from refundry.domain.errors import InvalidInput
from refundry.domain.money import cumulative_part

__all__ = ["debt_after", "refused_units_debt"]


def refused_units_debt(
    *,
    units: Sequence[Mapping[str, Any]],
    accepted: Mapping[str, int],
    line_paid: Mapping[str, int],
    total: int,
) -> int:
    """``units``: the applied plan's ``units`` (docs/plan-json.md); ``accepted``: units per line
    the inspection accepted (absent: none); ``line_paid``: each line's apportioned paid amount;
    ``total``: what the step moved."""
    owed = 0
    for unit in units:
        line_id = unit["line_id"]
        before, n, asked = unit["refunded_before"], unit["of"], unit["quantity"]
        kept = min(max(accepted.get(line_id, 0), 0), asked)
        paid = line_paid[line_id]
        accepted_part = cumulative_part(paid, before + kept, n) - cumulative_part(paid, before, n)
        owed += unit["paid"] - accepted_part
    return min(owed, total)


def debt_after(owed: int, part: int) -> int:
    """What is still owed after ``part`` of the debt ``owed`` is recovered or written off:
    ``case.debt_amount_invalid`` unless 1 <= part <= owed (whole minor units)."""
    if type(part) is not int or not 1 <= part <= owed:
        raise InvalidInput(
            f"the amount must be a whole number of minor units from 1 to the {owed} owed",
            code="case.debt_amount_invalid",
            field="amount",
        )
    return owed - part
