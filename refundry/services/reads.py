"""What the read models share: an amount with its currency, and the opaque cursors of lists.

Lists are newest (or oldest) first and paged by a cursor that names the last item shown. The
cursor is opaque to callers — base64url of a JSON list of strings — so that the services may
change what it holds; one not made here is ``request.invalid`` on the field ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from refundry.domain.errors import InvalidInput
from refundry.domain.reader import ID_LENGTH, text_problem

__all__ = [
    "ROW_ID_MAX",
    "Amount",
    "decode_case_cursor",
    "decode_cursor",
    "decode_id_cursor",
    "decode_time_cursor",
    "encode_cursor",
]

ROW_ID_MAX = 2**31 - 1  # the id columns are 32-bit INTEGER on PostgreSQL


@dataclass(frozen=True, slots=True)
class Amount:
    """Money: integer minor units with the ISO 4217 currency (None: the customer has no order
    yet that names the shop's currency)."""

    amount: int
    currency: str | None


def _refused() -> InvalidInput:
    return InvalidInput("cursor is not one this API gave", code="request.invalid", field="cursor")


def encode_cursor(*parts: object) -> str:
    raw = json.dumps([str(p) for p in parts], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The parts of a cursor made by ``encode_cursor``; a forged one is ``request.invalid``."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != size
        # The parts go into queries: what no id may hold (NUL: PostgreSQL refuses it) is forged.
        or not all(isinstance(p, str) and text_problem(p, max_length=100) is None for p in parts)
    ):
        raise _refused()
    return parts


def decode_id_cursor(cursor: str | None) -> int | None:
    """A row id cursor (postings, messages), newest first: the items below it come next."""
    if cursor is None:
        return None
    (value,) = decode_cursor(cursor, 1)
    if not value.isdigit() or int(value) > ROW_ID_MAX:
        raise _refused()
    return int(value)


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """A (time, id) cursor made by ``encode_cursor(time.isoformat(), id)``."""
    since, item_id = decode_cursor(cursor, 2)
    try:
        after = datetime.fromisoformat(since)
        if after.tzinfo is None:
            raise ValueError(since)
    except ValueError:
        raise _refused() from None
    return after, item_id


def decode_case_cursor(cursor: str) -> tuple[datetime, str]:
    """The case list's (created_at, case id) cursor; it words its refusal as it always has."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, case_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        # The id goes into the query: what no id may hold (NUL: PostgreSQL refuses it) is forged.
        if (
            when.tzinfo is None
            or not isinstance(case_id, str)
            or text_problem(case_id, max_length=ID_LENGTH)
        ):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "not a cursor this API gave", code="request.invalid", field="cursor"
        ) from None
    return when, case_id
