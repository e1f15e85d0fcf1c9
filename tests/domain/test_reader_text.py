"""Text and integers in documents are read the same way the store will hold them (issue 16
point 2): valid Unicode scalar values without control characters, at most the column's length,
integers within the column's range — refused by the Reader with the document's code and the
field, so SQLite and PostgreSQL refuse the same documents and nothing reaches the store."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from refundry.demo import worked_examples as ex
from refundry.domain.errors import InvalidInput
from refundry.domain.json_io import parse_order, parse_request, parse_snapshot
from refundry.domain.reader import MAX_INT32, MAX_INTEGER, printable, text_problem

CONTROL = "must be Unicode text without control characters (found {})"


def _order(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(ex.order("o-1", [ex.line("L1", 1000)], 1000))
    for path, value in changes.items():
        target: Any = doc
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"customer_id": "c-\x00"}, "order.customer_id", CONTROL.format(r"'\x00'")),
        ({"id": "o" * 65}, "order.id", "must be at most 64 characters"),
        ({"lines__0__id": "L\ud800"}, "order.lines[0].id", CONTROL.format(r"'\ud800'")),
        ({"lines__0__sku": "S" * 101}, "order.lines[0].sku", "must be at most 100 characters"),
        ({"lines__0__title": "a\nb"}, "order.lines[0].title", CONTROL.format(r"'\n'")),
        ({"lines__0__title": "T" * 201}, "order.lines[0].title", "must be at most 200 characters"),
        (
            {"lines__0__merchant_id": "m\x7f"},
            "order.lines[0].merchant_id",
            CONTROL.format(r"'\x7f'"),
        ),
        ({"lines__0__quantity": 2**31}, "order.lines[0].quantity", f"must be at most {MAX_INT32}"),
        (
            {"tenders__0__method": "m" * 33},
            "order.tenders[0].method",
            "must be at most 32 characters",
        ),
        (
            {"tenders__0__gateway_txn_id": "g\x9f"},
            "order.tenders[0].gateway_txn_id",
            CONTROL.format(r"'\x9f'"),
        ),
        ({"\ud800": 1}, r"order.\ud800", "unknown field"),
    ],
)
def test_bad_text_or_integer_in_an_order_is_order_invalid_naming_the_field(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_order(_order(**changes))
    assert (err.value.code, err.value.field, err.value.message) == ("order.invalid", field, message)


def test_totals_the_store_keeps_in_one_column_stay_in_its_range() -> None:
    many = [ex.line(f"L{i}", 1, quantity=MAX_INT32) for i in range(2)]
    with pytest.raises(InvalidInput) as units:
        parse_order(ex.order("o-1", many, 2 * MAX_INT32))
    assert (units.value.field, units.value.message) == (
        "order.lines",
        f"the goods units must be at most {MAX_INT32} in all",
    )
    dear = ex.line("L1", MAX_INTEGER // 2 + 1, quantity=2)
    with pytest.raises(InvalidInput) as line_total:
        parse_order(ex.order("o-1", [dear], MAX_INTEGER))
    assert (line_total.value.field, line_total.value.message) == (
        "order.lines[0]",
        f"quantity × price must be at most {MAX_INTEGER}",
    )
    two = _order()
    two["lines"][0]["unit_price"] = MAX_INTEGER
    two["lines"].append({**two["lines"][0], "id": "L2"})
    two["tenders"] = [
        {"id": f"T{i}", "kind": "external", "amount": MAX_INTEGER, "gateway_txn_id": f"g{i}"}
        for i in (1, 2)
    ]
    with pytest.raises(InvalidInput) as paid:
        parse_order(two)
    assert (paid.value.field, paid.value.message) == (
        "order.tenders",
        f"the tenders must be at most {MAX_INTEGER} in all",
    )


def test_text_at_the_limits_is_accepted() -> None:
    order = parse_order(
        _order(
            id="o" * 64,
            customer_id="客" * 64,  # characters, not bytes
            lines__0__title="T" * 200,
            lines__0__quantity=1,
        )
    )
    assert (order.id, order.customer_id, order.lines[0].title) == ("o" * 64, "客" * 64, "T" * 200)


def test_snapshot_and_request_refuse_bad_text_and_out_of_range_counts() -> None:
    with pytest.raises(InvalidInput) as quota:
        parse_snapshot({"customer_id": "c-1", "quotas_used": {"camp-1": 2**31}})
    assert (quota.value.code, quota.value.field) == ("snapshot.invalid", "snapshot.quotas_used")
    with pytest.raises(InvalidInput) as key:
        parse_snapshot({"customer_id": "c-1", "campaign_spend": {"camp\x00": 5}})
    assert (key.value.field, key.value.message) == (
        r"snapshot.campaign_spend.camp\x00",
        "key " + CONTROL.format(r"'\x00'"),
    )
    with pytest.raises(InvalidInput) as flag:
        parse_snapshot({"customer_id": "c-1", "risk_flags": ["ok", "x" * 65]})
    assert (flag.value.field, flag.value.message) == (
        "snapshot.risk_flags[1]",
        "must be at most 64 characters",
    )
    with pytest.raises(InvalidInput) as line_id:
        parse_request(ex.request("o-1", "L\x00"))
    assert (line_id.value.code, line_id.value.field) == (
        "request.invalid",
        "request.lines[0].line_id",
    )


def test_free_text_allows_tabs_and_line_breaks_only() -> None:
    assert text_problem("two\nlines,\r\na\ttab", max_length=100, multiline=True) is None
    assert text_problem("bell\a", max_length=100, multiline=True) == CONTROL.format(r"'\x07'")
    assert text_problem("a\nb", max_length=100) == CONTROL.format(r"'\n'")
    assert printable("a\x00\ud800é") == r"a\x00\ud800é"
