"""Text and integers are validated the same way on both backends (issue 16 point 2).

What the probe saw: ``"evidence": ["\\ud800"]`` committed a case and then every read of it
answered 500; NUL in a path or query parameter, a cursor or a body's text answered 500 on
PostgreSQL (``psycopg.DataError``) where SQLite stored it; ingest of a quantity of 2^31, a
65-character id or a NUL in ``customer_id`` was 201 on SQLite and 500 on PostgreSQL. Now each is
a 422 problem naming the field, with ``request.invalid_text`` for a character no field takes,
and every table unchanged. Free text keeps its tabs and line breaks.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.api.conftest import (
    ALICE,
    ALICE_MIXED,
    LINE_ALICE_M1,
    M1,
    World,
    bearer,
    db_snapshot,
    order_doc,
    snapshot_diff,
)

AGENT = bearer("agent", "agent-li")
ADMIN = bearer("admin", "admin-root")
CUSTOMER = bearer("customer", ALICE)
CONTROL = "must be Unicode text without control characters (found {})"


def _fresh_order(world: World, order_id: str = "ord-alice-fresh") -> str:
    """An order of Alice's whose line no case holds yet."""
    line = {"id": "ln-fresh", "sku": "SKU-F", "title": "Fresh", "merchant_id": M1}
    doc = order_doc(order_id, ALICE, [{**line, "quantity": 1, "unit_price": 5000}])
    r = world.client.post("/v1/orders", json={"order": doc}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return order_id


def _case(order_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "lines": [{"line_id": "ln-fresh", "quantity": 1}],
        "reason": "quality_issue",
        "kind": "refund_only",
        **extra,
    }


def send(world: World, method: str, path: str, who: dict[str, str], body: Any = None) -> Any:
    """The body as JSON with ASCII escapes (``\\ud800``), as a client in any language may send
    it (httpx's own ``json=`` cannot encode a lone surrogate)."""
    content = None if body is None else json.dumps(body).encode()
    headers = {**who, "content-type": "application/json"}
    return world.client.request(method, path, headers=headers, content=content)


def _refused(world: World, response: Any, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["field"]) == (status, code, field), body


# -- the lone surrogate ----------------------------------------------------------------------


def test_lone_surrogate_in_evidence_is_422_and_the_case_is_not_opened(world: World) -> None:
    order_id = _fresh_order(world)
    before = db_snapshot(world.engine)
    escaped = send(world, "POST", "/v1/cases", CUSTOMER, _case(order_id, evidence=["\ud800"]))
    _refused(world, escaped, 422, "request.invalid_text", "evidence.0")
    assert escaped.json()["detail"] == CONTROL.format(r"'\ud800'")
    # The same surrogate as raw bytes (CESU-8): JSON decoding lets it through as a str.
    raw = json.dumps(_case(order_id, evidence=["SURROGATE"])).encode()
    raw = raw.replace(b"SURROGATE", b"\xed\xa0\x80")
    as_bytes = world.client.post(
        "/v1/cases",
        content=raw,
        headers={**CUSTOMER, "content-type": "application/json"},
    )
    _refused(world, as_bytes, 422, "request.invalid_text", "evidence.0")
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
    listed = world.client.get("/v1/cases", headers=CUSTOMER)
    assert listed.status_code == 200
    # Free text keeps its line breaks and tabs; a valid reference opens the case.
    opened = world.client.post(
        "/v1/cases",
        json=_case(order_id, evidence=["photos/1.jpg"], description="torn\r\nseam:\there"),
        headers=CUSTOMER,
    )
    assert opened.status_code == 201, opened.text
    assert (opened.json()["evidence"], opened.json()["description"]) == (
        ["photos/1.jpg"],
        "torn\r\nseam:\there",
    )


def test_a_field_named_with_a_surrogate_or_a_nul_is_answered_in_valid_json(world: World) -> None:
    before = db_snapshot(world.engine)
    surrogate = send(world, "POST", "/v1/cases", CUSTOMER, {**_case(ALICE_MIXED), "\ud800": 1})
    # pydantic cannot read the key as a string at all: the body is refused whole.
    _refused(world, surrogate, 422, "request.invalid_text", None)
    nul = send(world, "POST", "/v1/cases", CUSTOMER, {**_case(ALICE_MIXED), "a\x00": 1})
    _refused(world, nul, 422, "request.unknown_field", r"a\x00")
    ingest = send(world, "POST", "/v1/orders", ADMIN, {"order": {"\udfff": 1}})
    _refused(world, ingest, 422, "order.invalid", r"order.\udfff")
    for r in (surrogate, nul, ingest):
        r.content.decode("utf-8")  # strict: every answer is UTF-8
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


# -- NUL and control characters in parameters and bodies --------------------------------------


def _cursor(*parts: str) -> str:
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


NUL_PARAMETERS = [
    ("GET", "/v1/orders/%00", AGENT, None, "path.order_id"),
    ("GET", "/v1/orders/%00/audit", AGENT, None, "path.order_id"),
    (
        "POST",
        "/v1/orders/%00/refund-preview",
        AGENT,
        {
            "lines": [{"line_id": "x", "quantity": 1}],
            "reason": "quality_issue",
            "kind": "refund_only",
        },
        "path.order_id",
    ),
    ("GET", "/v1/cases/%00", AGENT, None, "path.case_id"),
    ("POST", "/v1/cases/%00/approve", AGENT, {}, "path.case_id"),
    ("GET", "/v1/cases?order_id=%00", AGENT, None, "query.order_id"),
    ("GET", "/v1/cases?cursor=%00", AGENT, None, "query.cursor"),
    ("GET", "/v1/me/inbox?cursor=%01", CUSTOMER, None, "query.cursor"),
    ("POST", "/v1/customers/%00/suspension", AGENT, {"reason": "abuse"}, "path.customer_id"),
    ("DELETE", "/v1/customers/%00/suspension", AGENT, {"reason": "ok"}, "path.customer_id"),
]


@pytest.mark.parametrize(
    ("method", "path", "who", "body", "field"),
    NUL_PARAMETERS,
    ids=[f"{m} {p}" for m, p, *_ in NUL_PARAMETERS],
)
def test_nul_in_a_path_or_query_parameter_is_422_on_both_backends(
    module_world: World, method: str, path: str, who: dict[str, str], body: Any, field: str
) -> None:
    before = db_snapshot(module_world.engine)
    r = module_world.client.request(method, path, headers=who, json=body)
    _refused(module_world, r, 422, "request.invalid_text", field)
    assert snapshot_diff(before, db_snapshot(module_world.engine)) == ""


@pytest.mark.parametrize(
    ("path", "who", "cursor"),
    [
        ("/v1/cases", AGENT, _cursor("2026-11-24T04:00:00+00:00", "case-\x00")),
        ("/v1/agent/queue", AGENT, _cursor("2026-11-24T04:00:00+00:00", "\x00")),
        ("/v1/me/points", CUSTOMER, _cursor("1\x00")),
    ],
    ids=["cases", "agent queue", "points"],
)
def test_a_cursor_hiding_a_nul_is_not_one_the_api_gave(
    module_world: World, path: str, who: dict[str, str], cursor: str
) -> None:
    r = module_world.client.get(path, params={"cursor": cursor}, headers=who)
    _refused(module_world, r, 422, "request.invalid", "cursor")


def test_nul_in_body_text_is_422_naming_the_field_and_changes_nothing(
    module_world: World,
) -> None:
    w = module_world
    case = w.case_alice_mixed
    line = {"line_id": LINE_ALICE_M1, "quantity": 1}
    opening = {"lines": [line], "reason": "quality_issue", "kind": "refund_only"}
    attempts: list[tuple[str, str, dict[str, str], Any, str, str]] = [
        (
            "POST",
            "/v1/cases",
            CUSTOMER,
            {**opening, "order_id": ALICE_MIXED, "description": "a\x00b"},
            "request.invalid_text",
            "description",
        ),
        (
            "POST",
            "/v1/cases",
            CUSTOMER,
            {**opening, "order_id": "o\x00"},
            "request.invalid_text",
            "order_id",
        ),
        (
            "POST",
            "/v1/cases",
            CUSTOMER,
            {**opening, "order_id": ALICE_MIXED, "lines": [{"line_id": "\x00", "quantity": 1}]},
            "request.invalid_text",
            "lines.0.line_id",
        ),
        (
            "POST",
            "/v1/cases",
            CUSTOMER,
            {**opening, "order_id": ALICE_MIXED, "otp": {"code_id": "\x00", "code": "123456"}},
            "request.invalid_text",
            "otp.code_id",
        ),
        (
            "POST",
            "/v1/cases",
            CUSTOMER,
            {**opening, "order_id": ALICE_MIXED, "evidence": ["x" * 501]},
            "request.invalid",
            "evidence.0",
        ),
        (
            "POST",
            f"/v1/customers/{ALICE}/suspension",
            AGENT,
            {"reason": "abuse\x00"},
            "request.invalid_text",
            "reason",
        ),
        (
            "DELETE",
            f"/v1/customers/{ALICE}/suspension",
            AGENT,
            {"reason": "\x00"},
            "request.invalid_text",
            "reason",
        ),
        (
            "POST",
            f"/v1/cases/{case}/approve",
            AGENT,
            {"comment": "ok\x1b[2J"},
            "request.invalid_text",
            "comment",
        ),
        (
            "POST",
            f"/v1/cases/{case}/reject",
            AGENT,
            {"comment": "\x00"},
            "request.invalid_text",
            "comment",
        ),
        (
            "POST",
            f"/v1/cases/{case}/ship",
            CUSTOMER,
            {"tracking_number": "SF\x00"},
            "request.invalid_text",
            "tracking_number",
        ),
        (
            "POST",
            f"/v1/cases/{case}/ship",
            CUSTOMER,
            {"tracking_number": "SF\n1"},
            "request.invalid_text",
            "tracking_number",
        ),
        (
            "POST",
            f"/v1/cases/{case}/rate",
            CUSTOMER,
            {"rating": 5, "feedback": "\x07"},
            "request.invalid_text",
            "feedback",
        ),
        (
            "POST",
            f"/v1/cases/{case}/inspect",
            AGENT,
            {"result": "fail", "reason": "\x00"},
            "request.invalid_text",
            "reason",
        ),
        (
            "POST",
            f"/v1/cases/{case}/inspect",
            AGENT,
            {"result": "partial", "accepted": {"\x00": 1}},
            "request.invalid_text",
            r"accepted.\x00.[key]",
        ),
        (
            "POST",
            f"/v1/cases/{case}/inspect",
            AGENT,
            {"result": "partial", "accepted": {LINE_ALICE_M1: 2**31}},
            "request.invalid",
            f"accepted.{LINE_ALICE_M1}",
        ),
        (
            "POST",
            f"/v1/cases/{case}/resolve",
            AGENT,
            {"resolution": "waiver", "comment": "\ud800"},
            "request.invalid_text",
            "comment",
        ),
    ]
    before = db_snapshot(w.engine)
    for method, path, who, body, code, field in attempts:
        r = send(w, method, path, who, body)
        _refused(w, r, 422, code, field)
    assert snapshot_diff(before, db_snapshot(w.engine)) == ""


# -- ingest ----------------------------------------------------------------------------------


def test_ingest_out_of_range_or_bad_text_is_422_on_both_backends_and_stores_nothing(
    world: World,
) -> None:
    line = {"id": "L1", "sku": "S", "title": "T", "merchant_id": M1, "unit_price": 1}
    huge = order_doc("ord-huge", ALICE, [{**line, "quantity": 2**31}])
    long_id = order_doc("o" * 65, ALICE, [{**line, "quantity": 1}])
    nul = order_doc("ord-nul", "cust-\x00", [{**line, "quantity": 1}])
    phone = {
        "order": order_doc("ord-phone", "cust-new", [{**line, "quantity": 1}]),
        "customer": {"contact": {"phone": "+86" + "1" * 30}},
    }
    before = db_snapshot(world.engine)
    for doc, field, message in [
        ({"order": huge}, "order.lines[0].quantity", f"must be at most {2**31 - 1}"),
        ({"order": long_id}, "order.id", "must be at most 64 characters"),
        ({"order": nul}, "order.customer_id", CONTROL.format(r"'\x00'")),
        (phone, "customer.contact.phone", "must be at most 32 characters"),
    ]:
        r = world.client.post("/v1/orders", json=doc, headers=ADMIN)
        code = "snapshot.invalid" if field.startswith("customer") else "order.invalid"
        _refused(world, r, 422, code, field)
        assert r.json()["detail"] == message
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
