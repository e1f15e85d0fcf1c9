"""The prebuilt encoders give json.dumps's text, byte for byte."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from refundry.domain.json_text import compact, compact_unsorted, spaced

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**15), 10**15) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert compact(value) == json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    assert compact_unsorted(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert spaced(value) == json.dumps(value, sort_keys=True, ensure_ascii=False)


def test_examples() -> None:
    value = {"b": [1, "二", None], "a": {"y": True, "x": 'q"\n'}}
    assert compact(value) == '{"a":{"x":"q\\"\\n","y":true},"b":[1,"二",null]}'
    assert spaced({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert compact_unsorted({"b": 1, "a": 2}) == '{"b":1,"a":2}'
    assert compact("plain") == '"plain"'
