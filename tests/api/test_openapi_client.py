"""The OpenAPI document as a shop's client generator reads it (issue 12 point 5).

- Each operation has a readable, unique ``operationId`` (its route function's name), declares
  the bearer scheme where it reads a token (and ``security: []`` where it does not), takes
  ``Idempotency-Key`` on every POST, and declares ``Location`` on every 201.
- ``/docs`` and ``/redoc`` load only files this server serves (no CDN).
- A Python client generated from a real server's ``/openapi.json`` with openapi-python-client
  (a well-kept generator: attrs models over httpx) drives one whole refund against that server:
  ingest the order, preview as the customer, apply from the preview's hash, read the refund.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from refundry.api.app import create_app
from refundry.settings import Settings
from tests.api.conftest import M1, NOW, order_doc
from tests.api.test_real_server import Server, _start

# What reads no bearer token: the probes, and the inbound webhooks (signed bodies instead).
NO_TOKEN = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/v1/webhooks/gateway"),
    ("post", "/v1/webhooks/logistics"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/doc.sqlite", dev=True)
        doc: dict[str, Any] = create_app(settings, schema_check=False).openapi()
    return doc


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method, path, op


def test_operation_ids_are_readable_and_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids))
    noisy = [i for i in ids if not re.fullmatch(r"[a-z]+(_[a-z]+)*", i) or "_v1_" in i]
    assert noisy == []
    names = {(m, p): op["operationId"] for m, p, op in _operations(document)}
    assert names[("post", "/v1/orders/{order_id}/refunds")] == "apply_refund"
    assert names[("post", "/v1/cases")] == "open_case"


def test_bearer_auth_is_declared_where_a_token_is_read(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path, op in _operations(document):
        expected = [] if (method, path) in NO_TOKEN else [{"bearer": []}]
        assert op["security"] == expected, (method, path)


def test_posts_take_idempotency_keys_and_201s_declare_location(document: dict[str, Any]) -> None:
    created = []
    for method, path, op in _operations(document):
        if method == "post":
            assert "Idempotency-Key" in {p["name"] for p in op["parameters"]}, path
        answer = op["responses"].get("201")
        if answer is not None:
            assert "Location" in answer["headers"], path
            created.append(path)
    assert {"/v1/orders", "/v1/cases", "/v1/orders/{order_id}/refunds"} <= set(created)


def test_every_problem_answer_is_the_one_problem_schema(document: dict[str, Any]) -> None:
    refs = set()
    for _, _, op in _operations(document):
        for answer in op["responses"].values():
            media = answer.get("content", {}).get("application/problem+json")
            if media is not None:
                refs.add(media["schema"].get("$ref"))
    assert refs == {"#/components/schemas/Problem"}
    assert "code" in document["components"]["schemas"]["Problem"]["required"]


def test_reference_pages_load_only_local_files(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/pages.sqlite", dev=True)
    with TestClient(create_app(settings, schema_check=False)) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page)
            assert html.status_code == 200
            sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
            assert sources, page
            outside = [s for s in sources if re.match(r"(https?:)?//", s)]
            assert outside == [], (page, outside)
            for source in sources:
                if source.endswith((".js", ".css")):
                    asset = client.get(source)
                    assert asset.status_code == 200 and len(asset.content) > 10_000, source


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("client-server")
    yield from _start(f"sqlite:///{tmp / 'refundry.sqlite'}", tmp)


@pytest.fixture(scope="module")
def client_package(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The client openapi-python-client generates from the running server's document."""
    out = tmp_path_factory.mktemp("generated")
    spec = out / "openapi.json"
    spec.write_bytes(httpx.get(f"{server.base}/openapi.json").content)
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(out / "refundry_client"),
        ],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent)},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every operation and model generated: the generator skips what it cannot read, and says so.
    assert "Warning" not in done.stdout and "Unable" not in done.stdout, done.stdout
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("refundry_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith("refundry_client")]:
            del sys.modules[name]


def test_a_generated_client_drives_a_whole_refund(server: Server, client_package: Any) -> None:
    models = importlib.import_module("refundry_client.models")

    def operation(name: str) -> Any:  # the generator's module per operation, by tag
        return importlib.import_module(f"refundry_client.api.{name}")

    def signed_in(role: str, subject: str) -> Any:
        token = server.token(role, subject)["Authorization"].split(" ", 1)[1]
        return client_package.AuthenticatedClient(base_url=server.base, token=token)

    shop, customer = signed_in("admin", "shop-backend"), signed_in("customer", "c-gen")
    lines = [
        {
            "id": "ln-g",
            "sku": "S-G",
            "title": "G",
            "merchant_id": M1,
            "quantity": 2,
            "unit_price": 4500,
        },
    ]
    doc = order_doc("ord-generated", "c-gen", lines)
    doc["paid_at"] = NOW.isoformat()
    created = operation("orders.ingest_order").sync_detailed(
        client=shop, body=models.OrderIngest.from_dict({"order": doc}), idempotency_key="g-1"
    )
    assert created.status_code == 201, created.content
    assert created.headers["location"] == "/v1/orders/ord-generated"
    assert created.parsed.id == "ord-generated"

    ask = {
        "lines": [{"line_id": "ln-g", "quantity": 1}],
        "reason": "quality_issue",
        "kind": "refund_only",
    }
    plan = operation("orders.refund_preview").sync(
        order_id="ord-generated", client=customer, body=models.RefundRequestBody.from_dict(ask)
    )
    assert plan.amount.total == 4500, plan

    applied = operation("refunds.apply_refund").sync_detailed(
        order_id="ord-generated",
        client=shop,
        body=models.ApplyBody.from_dict({**ask, "expected_plan_hash": plan.plan_hash}),
        idempotency_key="g-2",
    )
    assert applied.status_code == 201, applied.content
    refund = applied.parsed
    assert applied.headers["location"] == f"/v1/refunds/{refund.id}"
    assert (refund.amount.amount, refund.amount.currency) == (4500, "CNY")

    read = operation("refunds.get_refund").sync(refund_id=refund.id, client=customer)
    assert read.to_dict() == refund.to_dict()
    again = operation("orders.get_order").sync(order_id="ord-generated", client=customer)
    assert [line.refunded_qty for line in again.lines] == [1]


def test_the_endpoint_table_in_the_docs_is_the_document(document: dict[str, Any]) -> None:
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([A-Z]+) (\S+)` \| `(\w+)` \| (token|none) \|$", text, re.M))
    ops = {
        (m.upper(), p, op["operationId"], "token" if op["security"] else "none")
        for m, p, op in _operations(document)
    }
    assert table == ops, (
        "docs/api.md's Endpoints table differs from /openapi.json: "
        f"missing {sorted(ops - table)}, stale {sorted(table - ops)}"
    )


def test_the_cli_request_document_is_the_http_request_body(server: Server) -> None:
    """examples/request.json, exactly as `refundry plan` reads it (``order_id`` in it, no
    ``kind``), is the body of the HTTP preview and gives the CLI's plan; another order's id in
    it is 422 ``request.order_mismatch``."""
    root = Path(__file__).parents[2] / "examples"
    order = json.loads((root / "order.json").read_text(encoding="utf-8"))
    request = json.loads((root / "request.json").read_text(encoding="utf-8"))
    server.call("POST", "/v1/orders", ("admin", "shop"), {"order": order}, status=201)
    now = datetime.now(UTC).isoformat()
    printed = subprocess.run(
        [
            str(Path(sys.executable).with_name("refundry")),
            "plan",
            str(root / "order.json"),
            str(root / "snapshot.json"),
            str(root / "request.json"),
            "--now",
            now,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cli = json.loads(printed.stdout)
    who = ("customer", order["customer_id"])
    http = server.call("POST", f"/v1/orders/{order['id']}/refund-preview", who, request)
    assert http["request"] == cli["request"]
    assert (http["amount"], http["deductions"]) == (cli["amount"], cli["deductions"])
    other = {**request, "order_id": "o-another"}
    answer = server.http.post(
        f"/v1/orders/{order['id']}/refund-preview", headers=server.token(*who), json=other
    )
    assert (answer.status_code, answer.json()["code"], answer.json()["field"]) == (
        422,
        "request.order_mismatch",
        "order_id",
    )
