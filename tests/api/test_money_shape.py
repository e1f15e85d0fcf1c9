"""Money has one shape in the API's views: ``{amount, currency}`` (docs/api.md, "Money")."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from refundry.api.app import create_app
from refundry.api.money import Money, MoneyOut, money_context
from refundry.settings import Settings

# Fields that hold money wherever they appear in an answer.
MONEY_FIELDS = {"amount", "unit_price", "paid", "debt", "cost", "value", "wallet_after"}
# Where those names mean something else, or the plan document (docs/plan-json.md) speaks: the
# one exception docs/api.md names (integer minor units under the plan's own currency).
NOT_MONEY = {
    ("BulkJobView", "refunded"),  # orders refunded so far: a count
}
PLAN_SCHEMAS = {"PlanView", "PlanAmount", "PlanTender", "PlanUnit", "PlanMoney"}
MONEY_SCHEMAS = {"Money", "MoneyInput", "SignedMoneyInput"}


def _schema_refs(prop: dict[str, Any]) -> set[str]:
    options = prop.get("anyOf", [prop])
    return {o["$ref"].rsplit("/", 1)[1] for o in options if "$ref" in o} | {
        o.get("type", "") for o in options if "$ref" not in o
    }


def _answer_schemas(doc: dict[str, Any]) -> set[str]:
    """Every component schema reachable from a 2xx answer."""
    schemas = doc["components"]["schemas"]
    todo: list[str] = []
    for item in doc["paths"].values():
        for op in item.values():
            for status, answer in op.get("responses", {}).items():
                if status.startswith("2"):
                    for media in answer.get("content", {}).values():
                        todo.extend(_refs_in(media.get("schema", {})))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs_in(schemas[name]))
    return seen


def _refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs_in(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs_in(v)]
    return []


def test_every_answer_carries_money_as_amount_and_currency(tmp_path: Any) -> None:
    settings = Settings(dev=True, database_url=f"sqlite:///{tmp_path / 'r.db'}")
    doc = create_app(settings, schema_check=False).openapi()
    schemas = doc["components"]["schemas"]
    answers = _answer_schemas(doc)
    assert {"OrderView", "CaseDetail", "RefundView", "AdjustmentView"} <= answers
    checked = []
    for name in sorted(answers - PLAN_SCHEMAS - MONEY_SCHEMAS):
        for field, prop in schemas[name].get("properties", {}).items():
            if field in MONEY_FIELDS | {"refunded", "refund_failed"} and (
                (name, field) not in NOT_MONEY
            ):
                kinds = _schema_refs(prop)
                if "integer" in kinds or "number" in kinds:
                    pytest.fail(f"{name}.{field} is a bare number: {prop}")
                if kinds & {"Money"}:
                    checked.append(f"{name}.{field}")
    # the ones the issue names are there: an order's line and tender money, a case's amount and
    # debt, a refund's amount, a reversal's debt
    assert {
        "OrderLineView.paid",
        "OrderLineView.unit_price",
        "OrderTenderView.refunded",
        "OrderTenderView.refund_failed",
        "CaseDetail.amount",
        "CaseDetail.debt",
        "RefundView.amount",
        "ReversalView.debt",
        "ShipmentView.cost",
        "AdjustmentView.wallet_after",
    } <= set(checked)


class _View(BaseModel):
    paid: MoneyOut


def test_a_view_pairs_integers_with_the_context_currency_and_refuses_without_one() -> None:
    view = _View.model_validate({"paid": 27000}, context=money_context("CNY"))
    assert view.paid == Money(amount=27000, currency="CNY")
    assert view.model_dump() == {"paid": {"amount": 27000, "currency": "CNY"}}
    with pytest.raises(ValidationError, match="money_context"):
        _View.model_validate({"paid": 27000})
    # money already paired keeps its own currency
    kept = _View.model_validate({"paid": {"amount": 5, "currency": "JPY"}}, context={})
    assert kept.paid == Money(amount=5, currency="JPY")
