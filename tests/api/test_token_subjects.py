"""A token's subject is an id like any other (issue 16 point 2): `refundry token` refuses one
with control characters or longer than 64 characters, and the server refuses a token carrying
one (401, where a NUL subject reached PostgreSQL's queries and answered 500)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from refundry.api.auth import issue_token
from refundry.api.serve import token_command
from tests.api.conftest import NOW, SECRET, World, db_snapshot, snapshot_diff


def _signed(subject: str, *, secret: bytes = SECRET) -> str:
    """A token as issue_token would make it, whatever the subject."""
    claims = {"role": "customer", "sub": subject, "exp": int((NOW + timedelta(days=1)).timestamp())}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return f"rf1.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_a_token_whose_subject_is_not_an_id_is_401(world: World) -> None:
    before = db_snapshot(world.engine)
    for subject in ("c-\x00", "c-\ud800", "c" * 65):
        r = world.client.get(
            "/v1/me/points", headers={"Authorization": f"Bearer {_signed(subject)}"}
        )
        assert r.status_code == 401, r.text
        assert (r.json()["code"], r.json()["detail"]) == (
            "auth.unauthorized",
            "bearer token not valid",
        )
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
    fine = world.client.get(
        "/v1/me/points", headers={"Authorization": f"Bearer {_signed('c' * 64)}"}
    )
    assert fine.status_code == 200, fine.text


def test_refundry_token_refuses_a_subject_that_is_not_an_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REFUNDRY_SECRET", "cli-secret")
    app = typer.Typer()
    app.command()(token_command)
    nul = CliRunner().invoke(app, ["customer", "c-\x01"])
    assert nul.exit_code == 2
    assert nul.stderr == (
        "refundry: subject must be Unicode text without control characters (found '\\x01')\n"
    )
    long = CliRunner().invoke(app, ["customer", "c" * 65])
    assert (long.exit_code, long.stderr) == (2, "refundry: subject must be at most 64 characters\n")
    with pytest.raises(ValueError, match="subject must be at most 64 characters"):
        issue_token(SECRET, role="customer", subject="c" * 65, now=datetime.now(UTC))
