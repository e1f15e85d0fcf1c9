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
