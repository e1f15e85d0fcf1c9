"""Logs and request ids for the server and the worker.

Logs are structlog events, one JSON object a line on stderr (``log_format = "console"`` for
people), each with the ids bound where they are known: ``request_id`` for everything a request
does, then ``actor``, ``order_id``, ``case_id``, ``refund_id`` as the code binds them
(``structlog.contextvars.bind_contextvars``). The request id comes from the caller's
``X-Request-Id`` header when it is a sane token, else is made here; it is answered in the same
header, written into every problem+json body, and carried in the outbox payloads the request
writes, so a gateway call can be traced back to the request that caused it.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from typing import Any

import structlog

__all__ = [
    "REQUEST_ID_HEADER",
    "configure_logging",
    "current_request_id",
    "new_request_id",
    "request_id_var",
]

REQUEST_ID_HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")

# The request being served in this task (None outside a request: the worker, the CLI).
request_id_var: ContextVar[str | None] = ContextVar("refundry_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id(given: str | None = None) -> str:
    """``given`` when it is a sane token (1–64 of letters, digits, ``._:-``), else a new one."""
    if given and _SANE.fullmatch(given):
        return given
    return "req_" + uuid.uuid4().hex


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged (a test runner may swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        return None


def configure_logging(*, level: str = "info", fmt: str = "json", trace_ids: bool = False) -> None:
    """Route structlog and the standard library's loggers (uvicorn's included) to stderr, one
    rendered line each; ``trace_ids``: with the current span's ids (refundry/tracing.py)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The trace ids are added by the handler's formatter (made anew here), not the loggers'
    # chain, which structlog caches at a logger's first use.
    spans: list[Any] = []
    if trace_ids:
        from refundry.tracing import log_trace_ids

        spans.append(log_trace_ids)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # below the level, an event is dropped first: no context merged, no time written
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _Stderr()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *spans,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # refundry logs each request itself (with its id); uvicorn's access line would say it twice
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
