"""A strict reader over one JSON object that names the exact field when something is wrong."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NoReturn

from refundry.domain.errors import InvalidInput

__all__ = [
    "ID_LENGTH",
    "MAX_INT32",
    "MAX_INTEGER",
    "Reader",
    "printable",
    "text_problem",
]

_MISSING: Any = object()
# The largest integer a document may carry: what the store's BIGINT columns hold (a larger
# amount used to fail at the database, as a server error, instead of here).
MAX_INTEGER = 2**63 - 1
# Quantities and counts: the store's INTEGER columns are 32-bit on PostgreSQL (SQLite would take
# 2**31 and PostgreSQL fail on it: the two backends must refuse the same documents).
MAX_INT32 = 2**31 - 1
# Ids are String(64) in the store; PostgreSQL refuses a longer one where SQLite keeps it.
ID_LENGTH = 64

# Not text anywhere: C0 controls (NUL among them: PostgreSQL cannot store it), DEL, C1 controls
# and surrogates (not Unicode scalar values: a lone one cannot be encoded as UTF-8, so the row
# would be written and every answer showing it would fail).
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Free text (a description, a comment) may also hold tabs and line breaks (CR too: an HTML form
# sends a textarea's lines as CRLF).
_NOT_FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

# Short texts found clean before: a document repeats its kinds, SKUs, titles and merchants.
_CLEAN: set[str] = set()
_CLEAN_KEPT = 4096
_CLEAN_LENGTH = 200


def text_problem(value: str, *, max_length: int, multiline: bool = False) -> str | None:
    """What is wrong with ``value`` as text of at most ``max_length`` characters, or None.
    The one rule for every text refundry accepts: documents here, the API's fields
    (refundry/api/fields.py)."""
    if value in _CLEAN:  # seen before: it holds none of what _NOT_TEXT finds
        bad = None
    else:
        bad = (_NOT_FREE_TEXT if multiline else _NOT_TEXT).search(value)
        if bad is not None:
            return f"must be Unicode text without control characters (found {bad.group()!a})"
        if not multiline and len(value) <= _CLEAN_LENGTH:
            if len(_CLEAN) >= _CLEAN_KEPT:
                _CLEAN.clear()
            _CLEAN.add(value)
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    return None


def printable(value: str) -> str:
    """``value`` with what ``text_problem`` refuses escaped (``\\x00``, ``\\ud800``): fit to be
    echoed in an error message, a terminal or a JSON answer."""
    return _NOT_TEXT.sub(lambda m: ascii(m.group())[1:-1], value)


class Reader:
    """Typed access to a JSON object; every error carries the path and the document's code."""

    __slots__ = ("_code", "_data", "_index", "_path")

    def __init__(self, data: Any, path: str, code: str, index: int | None = None) -> None:
        """``index``: the object is item ``index`` of the list at ``path`` (its path is made
        only when asked for: most items of a valid document never need it)."""
        self._path = path
        self._index = index
        self._code = code
        if not isinstance(data, dict):
            raise InvalidInput("must be a JSON object", code=code, field=self._base() or None)
        self._data: dict[str, Any] = data

    def path(self, key: str) -> str:
        return self._at(key)

    @property
    def document(self) -> dict[str, Any]:
        """The object read (not to be changed)."""
        return self._data

    def _base(self) -> str:
        if self._index is not None:
            self._path = f"{self._path}[{self._index}]"
            self._index = None
        return self._path

    def _at(self, key: str) -> str:
        base = self._base()
        return f"{base}.{key}" if base else key

    def fail(self, key: str, message: str) -> NoReturn:
        raise InvalidInput(message, code=self._code, field=printable(self._at(key)))

    def only(self, *allowed: str) -> None:
        for key in self._data:
            if key not in allowed:
                self.fail(str(key), "unknown field")

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def raw(self, key: str) -> Any:
        if key not in self._data:
            self.fail(key, "is required")
        return self._data[key]

    def _get(self, key: str, default: Any) -> Any:
        value = self._data.get(key)
        if value is None:
            if default is _MISSING:
                self.fail(key, "is required")
            return default
        return value

    def text(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        max_length: int = ID_LENGTH,
        multiline: bool = False,
    ) -> str:
        """A string: non-empty when required, at most ``max_length`` characters (an id's column
        by default), no control characters (``multiline`` allows tabs and line breaks)."""
        value = self._get(key, default)
        if not isinstance(value, str) or (default is _MISSING and not value):
            self.fail(key, "must be a non-empty string")
        problem = text_problem(value, max_length=max_length, multiline=multiline)
        if problem is not None:
            self.fail(key, problem)
        return value

    def opt_text(self, key: str, *, max_length: int = ID_LENGTH) -> str | None:
        return self.text(key, max_length=max_length) if self.has(key) else None

    def integer(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        minimum: int | None = 0,
        maximum: int = MAX_INTEGER,
    ) -> int:
        """An integer from ``minimum`` to ``maximum`` (the column's range: MAX_INT32 for
        quantities and counts); never beyond 64 bits."""
        value = self._get(key, default)
        if type(value) is not int:
            self.fail(key, "must be an integer (minor units; no decimals)")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum}")
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            self.fail(key, f"must be at most {MAX_INTEGER} in size")
        if value > maximum:
            self.fail(key, f"must be at most {maximum}")
        return value

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if value not in options:
            self.fail(key, f"must be one of {', '.join(options)}")
        return str(value)

    def moment(self, key: str, *, required: bool = True) -> datetime | Any:
        if not self.has(key):
            if required:
                self.fail(key, "is required")
            return None
        value = self._data[key]
        if not isinstance(value, str):
            self.fail(key, "must be an ISO 8601 time with a UTC offset")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(key, "must be an ISO 8601 time with a UTC offset")
        if parsed.tzinfo is None:
            self.fail(key, "must carry a UTC offset (naive times are ambiguous)")
        return parsed

    def child(self, key: str) -> Reader:
        return Reader(self.raw(key), self._at(key), self._code)

    def items(self, key: str, *, required: bool = True, min_items: int = 0) -> list[Reader]:
        value = self._get(key, _MISSING if required else [])
        if not isinstance(value, list):
            self.fail(key, "must be a list")
        if len(value) < min_items:
            self.fail(key, f"needs at least {min_items} item(s)")
        at, code = self._at(key), self._code
        return [Reader(v, at, code, i) for i, v in enumerate(value)]

    def str_list(self, key: str, *, required: bool = True, min_items: int = 0) -> list[str]:
        """A list of ids (each as ``text`` reads one)."""
        value = self._get(key, _MISSING if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, "must be a list of strings")
        if len(value) < min_items:
            self.fail(key, f"needs at least {min_items} item(s)")
        for i, item in enumerate(value):
            problem = text_problem(item, max_length=ID_LENGTH)
            if problem is not None:
                self.fail(f"{key}[{i}]", problem)
        return value

    def int_map(self, key: str, *, maximum: int = MAX_INTEGER) -> dict[str, int]:
        """Ids (as ``text`` reads them) to integers from 0 to ``maximum``."""
        value = self._get(key, {})
        if not isinstance(value, dict) or not all(
            type(v) is int and 0 <= v <= maximum for v in value.values()
        ):
            self.fail(key, f"must map ids to integers from 0 to {maximum}")
        for item in value:
            problem = text_problem(item, max_length=ID_LENGTH) if item else "must not be empty"
            if problem is not None:
                self.fail(f"{key}.{item}", f"key {problem}")
        return dict(value)
