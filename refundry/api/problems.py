"""Errors to HTTP, in one place: RFC 9457 problem+json with the stable ``code`` of the error tree.

{"type": "https://refundry.dev/problems/case.illegal_transition", "title": "...",
 "status": 409, "detail": "...", "code": "case.illegal_transition", "field": null}
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from refundry.api.auth import Unauthorized
from refundry.api.fields import INVALID_TEXT
from refundry.domain.case import IllegalTransition
from refundry.domain.errors import (
    CurrencyMismatch,
    InvalidInput,
    OrderRejected,
    RefundRefused,
    RefundryError,
)
from refundry.domain.reader import printable
from refundry.observability import REQUEST_ID_HEADER, current_request_id
from refundry.services.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PlanStale,
    RateLimited,
    SignInRefused,
    Unprocessable,
)

__all__ = ["PROBLEM_TYPE", "problem", "server_error", "status_for"]

log = structlog.get_logger("refundry.http")

PROBLEM_TYPE = "https://refundry.dev/problems/"
MEDIA = "application/problem+json"

_BY_CLASS: list[tuple[type[RefundryError], int]] = [
    (RateLimited, 429),
    (Unauthorized, 401),
    (SignInRefused, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (PlanStale, 409),
    (IllegalTransition, 409),
    (Conflict, 409),
    (InvalidInput, 422),
    (CurrencyMismatch, 422),
    (OrderRejected, 422),
    (RefundRefused, 422),
    (Unprocessable, 422),
]
_BY_CODE = {
    # an SMS provider did not take the message (adapters/sms_twilio.py): the customer's number
    # was refused (422), or the provider is down, busy or refused our credentials (503)
    "sms.rejected": 422,
    "sms.unavailable": 503,
    "sms.timeout": 503,
    "sms.throttled": 503,
    "sms.auth_failed": 503,
    "sms.protocol_error": 503,
    "rate.limited": 429,
    "idempotency.in_flight": 409,
    "request.too_large": 413,
    "request.headers_too_large": 431,
    # the cases' photos (services/cases/photos.py)
    "photo.too_large": 413,
    "photo.unsupported_type": 415,
    "photo.too_many": 409,
}


def status_for(error: RefundryError) -> int:
    if error.code in _BY_CODE:
        return _BY_CODE[error.code]
    for cls, status in _BY_CLASS:
        if isinstance(error, cls):
            return status
    return 400


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": code.replace(".", " "),
        "status": status,
        "detail": _encodable(detail),
        "code": code,
        # A field path may name what the client sent (an unknown key): escaped, the answer is
        # valid UTF-8 however hostile the key.
        "field": None if field is None else printable(field),
    }
    body.update(extra or {})
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=MEDIA, headers=headers)


async def refundry_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RefundryError)
    extra: dict[str, Any] = {}
    if isinstance(exc, PlanStale) and exc.plan is not None:
        extra["plan"] = exc.plan
    if isinstance(exc, IllegalTransition):
        extra["state"] = exc.state.value
        extra["allowed"] = list(exc.allowed)
    headers = None
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers = {"Retry-After": str(int(retry))}
    return problem(
        status_for(exc), exc.code, exc.message, field=exc.field, extra=extra, headers=headers
    )


# pydantic's error types with a code of their own; every other type is request.invalid.
_BY_TYPE = {
    "extra_forbidden": "request.unknown_field",
    INVALID_TEXT: "request.invalid_text",  # refundry/api/fields.py
    "string_unicode": "request.invalid_text",  # pydantic's own refusal of a lone surrogate
}


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    code = _BY_TYPE.get(first.get("type", ""), "request.invalid")
    return problem(
        422,
        code,
        first.get("msg", "invalid request"),
        field=where,
        extra={
            "errors": [
                {
                    "loc": [printable(p) if isinstance(p, str) else p for p in e.get("loc", ())],
                    "msg": _encodable(str(e.get("msg", ""))),
                    "type": e.get("type"),
                }
                for e in exc.errors()
            ]
        },
    )


def _encodable(text: str) -> str:
    """``text`` with lone surrogates escaped: anything else encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's answer to a JSON body it could not decode; JSON text is UTF-8 (RFC 8259),
        # so this is invalid input like a syntax error (422 request.invalid), with its own code.
        return problem(
            422, "request.not_utf8", "the body is not UTF-8 text (JSON is exchanged as UTF-8)"
        )
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
        # Another body FastAPI could not read (its 400 http.error): invalid JSON for us.
        return problem(422, "request.invalid", "the JSON body is nested too deeply")
    code = {404: "route.not_found", 405: "route.method_not_allowed"}.get(
        exc.status_code, "http.error"
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request) or headers.get("Allow", "")
    return problem(exc.status_code, code, str(exc.detail), headers=headers or None)


_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _allowed(request: Request) -> str:
    """Every method the OpenAPI document gives this path (RFC 9110's Allow). Starlette's own
    header names only the first route whose path matched, and a path here often has one route
    per method (GET and POST /v1/cases)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        parts = re.split(r"(\{[^/}]+\})", template)
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        if re.fullmatch(pattern, request.url.path):
            methods.update(m.upper() for m in operations if m in _METHODS)
    return ", ".join(sorted(methods))


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: a 500 problem+json with the request id, never a plain-text page.
    The exception is logged with its traceback; the answer says nothing of the internals."""
    log.error("http.unhandled", exc_info=exc, path=request.url.path)
    response = problem(
        500,
        "server.error",
        "refundry could not answer this request; quote its request_id to the operator",
    )
    request_id = current_request_id()
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response
