"""The API's text types: one rule for every string a body, a path or a query string carries.

Each is a ``str`` checked as documents are (``text_problem`` in refundry/domain/reader.py):
Unicode scalar values only (a lone surrogate cannot be stored as UTF-8), no control characters
(NUL among them: PostgreSQL cannot store it; free text may hold tabs and line breaks), and at
most the length of the column it goes to. A string with a character it refuses is 422
``request.invalid_text``; one too long or too short is 422 ``request.invalid``; both name the
field (refundry/api/problems.py). The lengths are in docs/api.md.

    order_id: Id                                   # a body field
    CaseId = Annotated[Id, Path()]                 # a path parameter
    order_id: Annotated[Id | None, Query()] = None # a query parameter
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from refundry.domain.reader import ID_LENGTH, MAX_INT32, text_problem

__all__ = [
    "INVALID_TEXT",
    "BearerToken",
    "EvidenceRef",
    "FreeText",
    "Id",
    "NonBlankText",
    "Note",
    "OneLine",
    "OtpCode",
    "Quantity",
    "Reason",
    "TrackingNumber",
]

INVALID_TEXT = "invalid_text"  # the pydantic error type; problems.py answers request.invalid_text
_UNBOUNDED = 1 << 62  # the length is StringConstraints' to check (it names the limit)


def _characters(*, multiline: bool) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, str):
            problem = text_problem(value, max_length=_UNBOUNDED, multiline=multiline)
            if problem is not None:
                raise PydanticCustomError(INVALID_TEXT, problem)
        return value  # not a string: pydantic's own type error

    return BeforeValidator(check)


_ONE_LINE = _characters(multiline=False)
_FREE = _characters(multiline=True)

# Any single-line text (cursors: their length is the parameter's).
OneLine = Annotated[str, _ONE_LINE]
# Ids of orders, lines, cases, customers, codes: String(64) in the store.
Id = Annotated[str, _ONE_LINE, StringConstraints(min_length=1, max_length=ID_LENGTH)]
# A return's tracking number: String(100), not blank.
TrackingNumber = Annotated[
    str, _ONE_LINE, StringConstraints(min_length=1, max_length=100, pattern=r"\S")
]
# A one-time code as the customer types it.
OtpCode = Annotated[str, _ONE_LINE, StringConstraints(min_length=1, max_length=12)]
# A reference to a file of evidence (a URL or an upload's key).
EvidenceRef = Annotated[str, _ONE_LINE, StringConstraints(min_length=1, max_length=500)]
# Free text people write: descriptions, comments, feedback, an inspection's reason.
FreeText = Annotated[str, _FREE, StringConstraints(max_length=2000)]
NonBlankText = Annotated[
    str, _FREE, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")
]
# An agent's reason to suspend or restore refund rights; an admin's note on a revocation.
Reason = Annotated[str, _FREE, StringConstraints(min_length=1, max_length=500)]
Note = Annotated[str, _FREE, StringConstraints(max_length=500)]
# A bearer token handed back to be revoked.
BearerToken = Annotated[str, _ONE_LINE, StringConstraints(min_length=1, max_length=4096)]
# A unit count in a body: the store's INTEGER columns are 32-bit.
Quantity = Annotated[int, Field(strict=True, ge=0, le=MAX_INT32)]
