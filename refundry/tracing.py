"""Optional OpenTelemetry tracing: a span per HTTP request and per SQL statement, sent by OTLP.

Off by default. ``tracing = "otlp"`` (``REFUNDRY_TRACING=otlp``) needs the extra ``pip install
'refundry[otel]'``; without it the server and the worker refuse to start with one line saying
so. Spans go to ``tracing_endpoint`` (OTLP over HTTP; default the collector's
``http://localhost:4318/v1/traces``) with ``service.name`` ``refundry``. Every HTTP span carries
the request's ``refundry.request_id`` (the ``X-Request-Id`` of the logs and the outbox
payloads), and every log line written inside a span carries its ``trace_id`` and ``span_id``, so
a slow request found in the traces is found in the logs and the other way round.

The instrumentation is given its tracer provider explicitly (never the process-wide one), so
one process can hold apps traced differently (the tests do).
"""

from __future__ import annotations

from typing import Any

from refundry.domain.errors import RefundryError

__all__ = ["TracingUnavailable", "log_trace_ids", "trace_app", "trace_engine", "tracer_provider"]

_EXTRA = "tracing = otlp needs the otel extra: pip install 'refundry[otel]'"


class TracingUnavailable(RefundryError):
    """``tracing = "otlp"`` without the otel extra installed: the service refuses to start."""

    code = "startup.refused"


def tracer_provider(*, endpoint: str | None, exporter: Any = None) -> Any:
    """A provider exporting by OTLP/HTTP to ``endpoint`` (or to ``exporter``: tests)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise TracingUnavailable(_EXTRA) from None
    provider = TracerProvider(resource=Resource.create({"service.name": "refundry"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TracingUnavailable(_EXTRA) from None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def _request_hook(span: Any, scope: dict[str, Any]) -> None:
    """The request's id on its server span, as RequestLog will answer it."""
    from refundry.api.request_log import request_id_of

    if span is None or not span.is_recording():
        return
    span.set_attribute("refundry.request_id", request_id_of(scope))  # RequestLog answers it


def trace_app(app: Any, provider: Any) -> None:
    """A span per request (route template as its name) around everything the app does."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        server_request_hook=_request_hook,
        exclude_spans=["receive", "send"],
    )


def trace_engine(engine: Any, provider: Any) -> None:
    """A span per SQL statement of ``engine`` (its cursor events, which store/prepared.py's
    hot statements fire too), inside the request's or the worker round's span.

    Written here, not opentelemetry-instrumentation-sqlalchemy: that package stops at
    SQLAlchemy 2.0 and, told to skip its check, imports SQLAlchemy's asyncio layer (greenlet)."""
    from opentelemetry.trace import SpanKind
    from sqlalchemy import event

    tracer = provider.get_tracer("refundry.store")
    system = engine.dialect.name
    name = engine.url.database or system

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = tracer.start_span(
            f"{operation} {name}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.name": name, "db.statement": statement},
        )
        conn.info.setdefault("_refundry_spans", []).append(span)

    def after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        spans = conn.info.get("_refundry_spans")
        if spans:
            spans.pop().end()

    def failed(context: Any) -> None:
        spans = context.connection.info.get("_refundry_spans") if context.connection else None
        if spans:
            span = spans.pop()
            span.record_exception(context.original_exception)
            span.end()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)


def log_trace_ids(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current span's ids on the log line (nothing outside a span,
    or without the extra)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return event
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", f"{context.trace_id:032x}")
        event.setdefault("span_id", f"{context.span_id:016x}")
    return event
