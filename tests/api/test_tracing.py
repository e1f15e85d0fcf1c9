"""Optional OpenTelemetry tracing (refundry/tracing.py): a request is one trace — its server span
named by the route, with the request id, and a span per SQL statement inside it — and its log
line carries the trace's ids. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from refundry.api.app import create_app
from refundry.api.auth import issue_token
from refundry.bootstrap import build
from refundry.demo import worked_examples as ex
from refundry.observability import configure_logging
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.migrate import upgrade
from refundry.tracing import TracingUnavailable, tracer_provider


def test_a_request_is_one_trace_with_its_sql_and_its_request_id(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = InMemorySpanExporter()
    runtime = build(Settings(dev=True, database_url=db_url, tracing="otlp"), span_exporter=spans)
    with UnitOfWork(runtime.engine) as uow:
        ingest_order(uow.conn, ex.THRESHOLD, policy=runtime.policy, now=datetime.now(UTC))
        uow.commit()
    spans.clear()  # the ingest's own statements
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging(trace_ids=True)
    try:
        client = TestClient(create_app(runtime=runtime))
        token = issue_token(
            runtime.settings.signing_secret(),
            role="customer",
            subject=ex.THRESHOLD["customer_id"],
            now=datetime.now(UTC),
        )
        r = client.get(
            "/v1/orders/o-500-100",
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "shop-req-42"},
        )
    finally:
        configure_logging()
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-Id"] == "shop-req-42"
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind.name == "SERVER"]
    assert [s.name for s in server] == ["GET /v1/orders/{order_id}"]
    (request_span,) = server
    assert request_span.attributes is not None
    assert request_span.attributes["refundry.request_id"] == "shop-req-42"
    assert request_span.attributes["http.status_code"] == 200
    sql = [s for s in finished if s.kind.name == "CLIENT"]
    assert sql, [s.name for s in finished]
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    assert {(s.attributes or {}).get("db.system") for s in sql} == {dialect}
    trace_id = request_span.context.trace_id
    assert {s.context.trace_id for s in finished} == {trace_id}  # one trace
    lines = [json.loads(x) for x in err.getvalue().splitlines() if x.startswith("{")]
    (logged,) = [x for x in lines if x.get("event") == "http.request"]
    assert logged["request_id"] == "shop-req-42"
    assert logged["trace_id"] == f"{trace_id:032x}"
    runtime.dispose()


def test_tracing_off_builds_no_tracer(db_url: str) -> None:
    runtime = build(Settings(dev=True, database_url=db_url))
    assert runtime.tracer is None
    runtime.dispose()


def test_tracing_without_the_extra_refuses_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.startswith("opentelemetry.sdk"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # what a missing package raises
    with pytest.raises(TracingUnavailable) as refused:
        tracer_provider(endpoint=None)
    assert refused.value.code == "startup.refused"
    assert refused.value.message == (
        "tracing = otlp needs the otel extra: pip install 'refundry[otel]'"
    )


def test_spans_reach_an_otlp_http_receiver(tmp_path: Path) -> None:
    """The real exporter, to a local HTTP receiver standing in for a collector."""
    received: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return None

    collector = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_port}/v1/traces"
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    upgrade(url)
    runtime = build(Settings(dev=True, database_url=url, tracing="otlp", tracing_endpoint=endpoint))
    try:
        assert TestClient(create_app(runtime=runtime)).get("/healthz").status_code == 200
        runtime.tracer.force_flush()
    finally:
        runtime.dispose()
        collector.shutdown()
    assert received, "no spans reached the collector"
    path, content_type, body = received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"refundry" in body and b"GET /healthz" in body
