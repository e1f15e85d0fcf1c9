"""JSON text encoders built once, for the texts the apply path writes and hashes.

``json.dumps(value, sort_keys=True, …)`` builds a new encoder on every call (its keywords are
not the cached default's): ~4 µs of a 5 µs call for the small dicts an applied refund writes
some forty of (audit entries, effects, outbox payloads, the plan's hash and text). These build
the C encoder once; the text is byte for byte what ``json.dumps`` gives with the same options
(tests/domain/test_json_text.py). No circular-reference check: domain values are trees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _json_encoder
from typing import Any

__all__ = ["compact", "compact_unsorted", "spaced"]


def _encoder(*, sort_keys: bool, separators: tuple[str, str]) -> Callable[[Any], str]:
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


# json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":")): canonical texts.
compact = _encoder(sort_keys=True, separators=(",", ":"))
# json.dumps(v, ensure_ascii=False, separators=(",", ":"))
compact_unsorted = _encoder(sort_keys=False, separators=(",", ":"))
# json.dumps(v, sort_keys=True, ensure_ascii=False)
spaced = _encoder(sort_keys=True, separators=(", ", ": "))
