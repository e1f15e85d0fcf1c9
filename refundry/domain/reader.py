"""A strict reader over one JSON object that names the exact field when something is wrong."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from refundry.domain.errors import InvalidInput

__all__ = ["MAX_INTEGER", "Reader"]

_MISSING: Any = object()
# The largest integer a document may carry: what the store's BIGINT columns hold (a larger
# amount used to fail at the database, as a server error, instead of here).
MAX_INTEGER = 2**63 - 1


class Reader:
    """Typed access to a JSON object; every error carries the path and the document's code."""

    __slots__ = ("_code", "_data", "_path")

    def __init__(self, data: Any, path: str, code: str) -> None:
        self._path = path
        self._code = code
        if not isinstance(data, dict):
            raise InvalidInput("must be a JSON object", code=code, field=path or None)
        self._data: dict[str, Any] = data

    def path(self, key: str) -> str:
        return self._at(key)

    def _at(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def fail(self, key: str, message: str) -> NoReturn:
        raise InvalidInput(message, code=self._code, field=self._at(key))

    def only(self, *allowed: str) -> None:
        for key in self._data:
            if key not in allowed:
                self.fail(key, "unknown field")

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

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or (default is _MISSING and not value):
            self.fail(key, "must be a non-empty string")
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = 0) -> int:
        value = self._get(key, default)
        if type(value) is not int:
            self.fail(key, "must be an integer (minor units; no decimals)")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum}")
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            self.fail(key, f"must be at most {MAX_INTEGER} in size")
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
        return [Reader(v, f"{self._at(key)}[{i}]", self._code) for i, v in enumerate(value)]

    def str_list(self, key: str, *, required: bool = True, min_items: int = 0) -> list[str]:
        value = self._get(key, _MISSING if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, "must be a list of strings")
        if len(value) < min_items:
            self.fail(key, f"needs at least {min_items} item(s)")
        return value

    def int_map(self, key: str) -> dict[str, int]:
        value = self._get(key, {})
        if not isinstance(value, dict) or not all(
            type(v) is int and 0 <= v <= MAX_INTEGER for v in value.values()
        ):
            self.fail(key, f"must map ids to integers from 0 to {MAX_INTEGER}")
        return dict(value)
