"""The smaller findings of issue 16 (point 6), each answered as docs/errors.md says, on SQLite
and PostgreSQL: a body that is not UTF-8, a method the path does not take, and an unknown field
on ``POST /v1/me/inbox/{id}/read``."""

from __future__ import annotations

from sqlalchemy import select

from refundry.store.tables import inbox_messages
from tests.api.conftest import (
    ALICE,
    World,
    bearer,
    db_snapshot,
    snapshot_diff,
)
from tests.api.conftest import (
    problem_of as _problem,
)

AGENT = bearer("agent", "agent-li")
ADMIN = bearer("admin", "admin-root")
CUSTOMER = bearer("customer", ALICE)


def test_a_body_that_is_not_utf8_is_422_request_not_utf8(world: World) -> None:
    before = db_snapshot(world.engine)
    for body in (b'{"order_id": "\xff\xfe"}', b'{"description": "caf\xe9"}'):
        r = world.client.post(
            "/v1/cases", content=body, headers={**CUSTOMER, "content-type": "application/json"}
        )
        problem = _problem(r, 422, "request.not_utf8")
        assert problem["detail"] == "the body is not UTF-8 text (JSON is exchanged as UTF-8)"
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


def test_a_body_nested_too_deeply_is_422_request_invalid(world: World) -> None:
    before = db_snapshot(world.engine)
    for body in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        r = world.client.post(
            "/v1/cases", content=body, headers={**CUSTOMER, "content-type": "application/json"}
        )
        problem = _problem(r, 422, "request.invalid")
        assert problem["detail"] == "the JSON body is nested too deeply"
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


def test_a_method_the_path_does_not_take_is_405_with_allow(world: World) -> None:
    before = db_snapshot(world.engine)
    cases = world.client.put("/v1/cases", headers=AGENT, json={})
    _problem(cases, 405, "route.method_not_allowed")
    assert cases.headers["allow"] == "GET, POST"
    one = world.client.delete(f"/v1/cases/{world.case_alice_mixed}", headers=AGENT)
    _problem(one, 405, "route.method_not_allowed")
    assert one.headers["allow"] == "GET"
    suspension = world.client.get(f"/v1/customers/{ALICE}/suspension", headers=AGENT)
    _problem(suspension, 405, "route.method_not_allowed")
    assert suspension.headers["allow"] == "DELETE, POST"
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


def test_reading_an_inbox_message_refuses_unknown_fields(world: World) -> None:
    path = f"/v1/me/inbox/{world.inbox_alice}/read"
    before = db_snapshot(world.engine)
    r = world.client.post(path, json={"read_at": "2020-01-01T00:00:00+00:00"}, headers=CUSTOMER)
    _problem(r, 422, "request.unknown_field", "read_at")
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
    for body in ({}, None):
        ok = world.client.post(path, json=body, headers=CUSTOMER)
        assert ok.status_code == 200, ok.text
        assert ok.json()["id"] == world.inbox_alice
    with world.engine.connect() as conn:
        read_at = conn.execute(
            select(inbox_messages.c.read_at).where(inbox_messages.c.id == world.inbox_alice)
        ).scalar_one()
    assert read_at is not None
