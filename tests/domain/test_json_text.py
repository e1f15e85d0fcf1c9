"""The prebuilt encoders give json.dumps's text, byte for byte; parse reads as json.loads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundry.domain.errors import InvalidInput
from refundry.domain.json_io import parse_order
from refundry.domain.json_text import compact, compact_unsorted, parse_stored
from refundry.domain.reader import MAX_INTEGER, Reader

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert compact(value) == json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    assert compact_unsorted(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_examples() -> None:
    value = {"b": [1, "二", None], "a": {"y": True, "x": 'q"\n'}}
    assert compact(value) == '{"a":{"x":"q\\"\\n","y":true},"b":[1,"二",null]}'
    assert compact_unsorted({"b": 1, "a": 2}) == '{"b":1,"a":2}'
    assert compact("plain") == '"plain"'


# What orjson refuses goes to the standard encoder / decoder: the same text and values as json.
@given(st.integers(min_value=2**64, max_value=2**80) | st.integers(max_value=-(2**63) - 1))
def test_integers_beyond_64_bits_are_written_as_json_dumps_writes_them(big: int) -> None:
    assert compact({"n": big}) == f'{{"n":{big}}}'
    assert compact_unsorted([big]) == f"[{big}]"


def test_the_reader_keeps_stored_integers_within_what_parse_stored_reads_exactly() -> None:
    """parse_stored reads integers beyond 64 bits as floats (orjson): documents never hold one,
    the Reader refuses them."""
    assert parse_stored(str(MAX_INTEGER)) == MAX_INTEGER
    assert parse_stored(str(-MAX_INTEGER)) == -MAX_INTEGER
    assert isinstance(parse_stored(str(2**65)), float)  # the difference, stated
    with pytest.raises(InvalidInput, match="at most"):
        Reader({"n": -MAX_INTEGER - 1}, "doc", "doc.invalid").integer("n", minimum=None)
    for too_big in (MAX_INTEGER + 1, 10**30):
        with pytest.raises(InvalidInput, match=r"at most .* \(at order\.lines\[0\]\.unit_price\)"):
            parse_order(_order_with_price(too_big))


def _order_with_price(price: int) -> dict[str, Any]:
    return {
        "id": "o-1",
        "customer_id": "c-1",
        "currency": "CNY",
        "status": "delivered",
        "paid_at": "2026-11-20T10:00:00+08:00",
        "lines": [{"id": "L1", "sku": "S", "title": "T", "quantity": 1, "unit_price": price}],
        "tenders": [{"id": "T1", "kind": "external", "method": "card", "amount": price}],
    }


def test_non_string_keys_and_refusals_as_json() -> None:
    assert compact({2: "b", 1: "a"}) == json.dumps(
        {2: "b", 1: "a"}, sort_keys=True, separators=(",", ":")
    )
    assert compact_unsorted({1: True}) == '{"1":true}'
    with pytest.raises(TypeError):
        compact({"at": datetime(2026, 1, 1, tzinfo=UTC)})  # as json.dumps: not JSON


@given(values)
def test_parse_stored_reads_what_json_loads_reads(value: Any) -> None:
    spaced = json.dumps(value, sort_keys=True, ensure_ascii=False)
    for text in (compact(value), spaced, json.dumps(value)):
        assert parse_stored(text) == json.loads(text)
        assert parse_stored(text.encode()) == json.loads(text)


def test_parse_stored_falls_back_for_what_orjson_refuses() -> None:
    for text in ('"\\ud800"', "NaN", "[1e400]", '{"a": -Infinity}'):
        assert repr(parse_stored(text)) == repr(json.loads(text))
