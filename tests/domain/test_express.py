"""domain/express.py on worked figures: the SPEC example, a failed inspection, and an
accepted-only step that would itself be held for an agent."""

from __future__ import annotations

from typing import Any

from refundry.demo import worked_examples as ex
from refundry.domain.express import accepted_request, history_document, plan_reversal
from refundry.domain.json_io import parse_history, plan_from_json
from refundry.domain.plan_doc import PlanDoc

NOW = "2026-11-24T12:00:00+08:00"
SNAPSHOT = {"customer_id": ex.CUSTOMER}


def plans(price: int, accepted: dict[str, int], **request: Any) -> tuple[PlanDoc, PlanDoc | None]:
    """The express step (2 units of P) and its accepted-only step, from the same inputs."""
    order = ex.order("o-x", [{**ex.line("P", price), "quantity": 2}], 2 * price)
    ask = {
        "order_id": "o-x",
        "reason": "changed_mind",
        "lines": [{"line_id": "P", "quantity": 2}],
        **request,
    }
    full = plan_from_json(order=order, snapshot=SNAPSHOT, request=ask, now=NOW)
    again = accepted_request(full, accepted)
    part = plan_from_json(order=order, snapshot=SNAPSHOT, request=again, now=NOW) if again else None
    return full, part


def test_the_spec_example_owes_the_refused_units_money() -> None:
    """2 × 200.00 paid at approval, 1 accepted: 1 unit back, debt 200.00, the card keeps 400.00."""
    full, part = plans(20000, {"P": 1})
    rev = plan_reversal(full, part, points_balance=0, minor_units_per_point=1)
    assert (rev.units, rev.debt, rev.moved, rev.tenders) == ({"P": 1}, 20000, {"T1": 40000}, {})
    later = parse_history([history_document(full, part, rev.moved)])[0]
    assert (later.units, later.moved) == ({"P": 1}, {"T1": 40000})


def test_a_failed_inspection_reverses_every_unit() -> None:
    full, part = plans(20000, {})
    assert part is None
    rev = plan_reversal(full, part, points_balance=0, minor_units_per_point=1)
    assert (rev.units, rev.goods_units, rev.debt) == ({"P": 2}, 2, 40000)
    later = parse_history([history_document(full, part, rev.moved)])[0]
    assert (later.units, later.moved, later.path_deductions) == ({}, {"T1": 40000}, 0)


def test_an_accepted_only_step_held_for_an_agent_credits_nothing() -> None:
    """2 × 8.00 with a 10.00 prepaid label: 16.00 − 10.00 = 6.00 paid early;
    one unit alone would be 8.00 − 10.00 < 0, held: the debt is the 6.00, and the step is read
    later with the accepted unit and without the label it never deducted."""
    full, part = plans(800, {"P": 1}, kind="return_and_refund", return_method="prepaid_label")
    assert full["amount"]["total"] == 600
    assert part is not None and part["status"] == "needs_manual_review"
    rev = plan_reversal(full, part, points_balance=0, minor_units_per_point=1)
    assert (rev.units, rev.debt) == ({"P": 1}, 600)
    later = parse_history([history_document(full, part, rev.moved)])[0]
    assert (later.units, later.moved, later.path_deductions) == ({"P": 1}, {"T1": 600}, 0)
