"""The API's shell: problem+json errors, bearer tokens, Idempotency-Key, body limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from refundry.api.app import create_app
from refundry.api.auth import issue_token, read_token
from refundry.api.deps import ActorDep
from refundry.domain.errors import RefundryError
from refundry.settings import Settings

SECRET = b"test-secret"
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


calls: list[int] = []
probe = APIRouter()


@probe.post("/v1/_probe")
def _probe(body: Echo, actor: ActorDep) -> dict[str, object]:
    calls.append(body.n)
    return {"n": body.n, "calls": len(calls), "actor": actor.tag}


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int
    b: dict[str, int]


@probe.post("/v1/_pair")
def _pair(body: Pair, actor: ActorDep) -> dict[str, object]:
    calls.append(body.a)
    return {"a": body.a, "calls": len(calls)}


@pytest.fixture()
def client(db_url: str) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=db_url, secret=SECRET, max_body_bytes=1024, dev=True),
        clock=lambda: NOW,
    )
    app.include_router(probe)
    calls.clear()
    with TestClient(app) as c:
        yield c


def auth(role: str = "customer", sub: str = "c-1") -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, role=role, subject=sub, now=NOW)}


def test_tokens_round_trip_and_refuse_tampering_and_expiry() -> None:
    token = issue_token(SECRET, role="agent", subject="li", now=NOW)
    assert read_token(SECRET, token, now=NOW).tag == "agent:li"
    with pytest.raises(RefundryError) as bad:
        read_token(SECRET, token[:-2] + "xx", now=NOW)
    assert bad.value.code == "auth.unauthorized"
    with pytest.raises(RefundryError) as old:
        read_token(SECRET, token, now=NOW + timedelta(days=31))
    assert old.value.code == "auth.token_expired"


def test_missing_token_is_401_problem_json(client: TestClient) -> None:
    r = client.post("/v1/_probe", json={"n": 1})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "auth.unauthorized"
    assert calls == []


def test_unknown_field_is_422_with_its_own_code(client: TestClient) -> None:
    r = client.post("/v1/_probe", json={"n": 1, "amount": 5}, headers=auth())
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422,
        "request.unknown_field",
        "amount",
    )


def test_idempotency_key_replays_refuses_reuse_and_scopes_per_caller(client: TestClient) -> None:
    first = client.post("/v1/_probe", json={"n": 7}, headers={**auth(), "Idempotency-Key": "k1"})
    again = client.post("/v1/_probe", json={"n": 7}, headers={**auth(), "Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {"n": 7, "calls": 1, "actor": "customer:c-1"}
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/_probe", json={"n": 8}, headers={**auth(), "Idempotency-Key": "k1"})
    assert (other.status_code, other.json()["code"]) == (422, "idempotency.key_reused")
    mine = client.post(
        "/v1/_probe", json={"n": 7}, headers={**auth(sub="c-2"), "Idempotency-Key": "k1"}
    )
    assert mine.json()["calls"] == 2  # another caller's key space
    assert calls == [7, 7]


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    r = client.post(
        "/v1/_probe",
        content=b"{" + b" " * 2000 + b"}",
        headers={**auth(), "content-type": "application/json"},
    )
    assert (r.status_code, r.json()["code"]) == (413, "request.too_large")


transient: list[int] = []
moment = APIRouter()


@moment.post("/v1/_moment")
def _moment(body: Echo, actor: ActorDep) -> dict[str, object]:
    """Refuses as the moment says (429, then 409), then succeeds."""
    from refundry.services.errors import Conflict, RateLimited

    transient.append(body.n)
    if len(transient) == 1:
        raise RateLimited("too many", retry_after=5)
    if len(transient) == 2:
        raise Conflict("the case moved", code="case.illegal_state")
    return {"n": body.n, "calls": len(transient)}


def test_429_and_409_are_not_stored_and_a_retry_with_the_key_runs_again(db_url: str) -> None:
    """Issue 16 point 4: a 429 rate.limited and state-dependent 409s were stored and replayed."""
    app = create_app(Settings(database_url=db_url, secret=SECRET, dev=True), clock=lambda: NOW)
    app.include_router(moment)
    transient.clear()
    headers = {**auth(), "Idempotency-Key": "k-moment"}
    with TestClient(app) as c:
        assert c.post("/v1/_moment", json={"n": 1}, headers=headers).status_code == 429
        assert c.post("/v1/_moment", json={"n": 1}, headers=headers).status_code == 409
        ok = c.post("/v1/_moment", json={"n": 1}, headers=headers)
        assert (ok.status_code, ok.json()["calls"]) == (200, 3)
        again = c.post("/v1/_moment", json={"n": 1}, headers=headers)  # now stored: replayed
        assert (again.json()["calls"], again.headers.get("idempotent-replayed")) == (3, "true")
    assert transient == [1, 1, 1]


def test_a_subject_holding_a_colon_cannot_replay_another_callers_answer(
    client: TestClient,
) -> None:
    """Issue 16 point 4: keys were scoped as role:subject:key with ':' allowed in both."""
    first = client.post(
        "/v1/_probe", json={"n": 5}, headers={**auth(sub="a"), "Idempotency-Key": "b:x"}
    )
    other = client.post(
        "/v1/_probe", json={"n": 5}, headers={**auth(sub="a:b"), "Idempotency-Key": "x"}
    )
    assert first.json()["actor"] == "customer:a"
    assert (other.json()["actor"], other.headers.get("idempotent-replayed")) == (
        "customer:a:b",
        None,
    )
    assert calls == [5, 5]


def test_the_same_json_with_its_keys_in_another_order_is_the_same_request(
    client: TestClient,
) -> None:
    """Issue 16 point 4: the raw bytes were hashed, so reordered keys (or other spacing) were
    422 idempotency.key_reused. The fingerprint is over the parsed, canonical body."""
    headers = {**auth(), "Idempotency-Key": "k-order", "content-type": "application/json"}
    first = client.post("/v1/_pair", content=b'{"a": 1, "b": {"x": 1, "y": 2}}', headers=headers)
    again = client.post("/v1/_pair", content=b'{"b":{"y":2,"x":1},"a":1}', headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json() == {"a": 1, "calls": 1}
    other = client.post("/v1/_pair", content=b'{"b":{"y":2,"x":1},"a":2}', headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency.key_reused")
    assert calls == [1]


def test_every_post_documents_the_idempotency_key_and_its_refusals(client: TestClient) -> None:
    """Issue 16 point 7: a POST with the header may answer 409 idempotency.in_flight or 422
    idempotency.key_reused, which some operations' documents did not list."""
    doc = client.get("/openapi.json").json()
    posts = [(path, item["post"]) for path, item in doc["paths"].items() if "post" in item]
    assert len(posts) >= 15
    for path, op in posts:
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in names, path
        assert {"409", "422"} <= set(op["responses"]), path
