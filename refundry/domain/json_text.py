"""JSON texts the apply path writes, hashes and reads back, through orjson.

``compact`` is ``json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))``
byte for byte, ``compact_unsorted`` the same without ``sort_keys``, for the JSON values refundry
writes: strings, integers, booleans, null, lists (and tuples), objects with string keys
(tests/domain/test_json_text.py, hypothesis). They run orjson (a tenth of the C ``json``
encoder's time on a plan: 3 µs instead of 31); what orjson refuses (integers beyond 64 bits,
non-string keys) goes to the standard encoder, so the text is json.dumps's there too. Floats are
not among the values refundry writes (money is integers, rates are whole percents): orjson
would write NaN as null and 1e16 as ``1e16`` where json.dumps writes ``NaN`` and ``1e+16``.

``parse_stored`` is ``json.loads`` for the texts refundry stored itself (plans, orders, answers,
customer columns): orjson, and ``json.loads`` for what orjson refuses (NaN, lone surrogates,
numbers too large for a double). One difference is left, on purpose: orjson reads an integer
beyond 64 bits as a float. The integers of stored texts come from documents whose integers the
domain Reader bounds to ±(2**63 - 1) (and from sums the store's BIGINT columns hold), so it never
meets one there; texts from outside go through ``json.loads``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from json import encoder as _json_encoder
from typing import Any

import orjson

__all__ = ["compact", "compact_unsorted", "instant", "parse_stored", "spaced"]


def _standard(*, sort_keys: bool, separators: tuple[str, str]) -> Callable[[Any], str]:
    """The standard library's encoder with these options, built once (``json.dumps`` builds a
    new one on every call that passes keywords: ~4 µs of a 5 µs call on a small dict)."""
    item_separator, key_separator = separators
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the pure-Python encoder, still built once
        return json.JSONEncoder(
            sort_keys=sort_keys,
            ensure_ascii=False,
            check_circular=False,
            separators=separators,
        ).encode
    fallback = json.JSONEncoder(ensure_ascii=False, check_circular=False)
    c_encode = make(
        None,  # markers: no circular check
        fallback.default,
        _json_encoder.encode_basestring,  # ensure_ascii=False
        None,  # indent
        key_separator,
        item_separator,
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan
    )

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


def _fast(option: int, standard: Callable[[Any], str]) -> Callable[[Any], str]:
    # Dataclasses and datetimes go to ``default`` (the standard encoder then raises TypeError,
    # as json.dumps does) instead of being serialized by orjson on its own terms.
    option |= orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    dumps, refused = orjson.dumps, orjson.JSONEncodeError

    def encode(value: Any) -> str:
        try:
            return dumps(value, option=option).decode()
        except refused:
            return standard(value)

    return encode


# json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":")): canonical texts.
compact = _fast(orjson.OPT_SORT_KEYS, _standard(sort_keys=True, separators=(",", ":")))
# json.dumps(v, ensure_ascii=False, separators=(",", ":"))
compact_unsorted = _fast(0, _standard(sort_keys=False, separators=(",", ":")))
# json.dumps(v, sort_keys=True, ensure_ascii=False): the stored order documents' form (the
# standard encoder, built once; orjson has no spaced separators)
spaced = _standard(sort_keys=True, separators=(", ", ": "))


def parse_stored(text: str | bytes) -> Any:
    """``json.loads(text)`` for a text refundry stored (see the module's docstring)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def instant(moment: datetime) -> str:
    """``moment`` (aware) as refundry writes every timestamp: RFC 3339 in UTC with ``Z``
    (``2026-11-24T04:00:00Z``), whatever offset it came with."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
