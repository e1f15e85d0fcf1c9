"""An admin revokes a bearer token: refused from then on, audited, only by an admin."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from refundry.api.auth import Unauthorized, issue_token
from refundry.api.deps import bearer_actor
from refundry.services.access import Actor
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log
from tests.api.conftest import ADMIN, ALICE, NOW, SECRET, World, bearer


def test_a_revoked_token_is_refused_and_the_revocation_is_audited(world: World) -> None:
    token = issue_token(SECRET, role="customer", subject=ALICE, now=NOW)
    alice = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/v1/me/coupons", headers=alice).status_code == 200

    refused = world.client.post(
        "/v1/admin/tokens/revoke", json={"token": token}, headers=bearer("agent", "li")
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    assert world.client.get("/v1/me/coupons", headers=alice).status_code == 200

    r = world.client.post(
        "/v1/admin/tokens/revoke",
        json={"token": token, "reason": "laptop stolen"},
        headers=bearer("admin", ADMIN),
    )
    assert r.status_code == 200  # an action on a token, not a new resource: `created` tells
    assert (r.json()["subject"], r.json()["created"]) == (f"customer:{ALICE}", True)
    after = world.client.get("/v1/me/coupons", headers=alice)
    assert (after.status_code, after.json()["code"]) == (401, "auth.token_revoked")
    other = bearer("customer", ALICE)  # a new token of the same customer still works
    assert world.client.get("/v1/me/coupons", headers=other).status_code == 200

    again = world.client.post(
        "/v1/admin/tokens/revoke", json={"token": token}, headers=bearer("admin", ADMIN)
    )
    assert (again.status_code, again.json()["created"]) == (200, False)
    with UnitOfWork(world.engine, readonly=True) as uow:
        entries = uow.conn.execute(
            select(audit_log.c.actor, audit_log.c.action).where(
                audit_log.c.action == "token.revoked"
            )
        ).all()
    assert entries == [(f"admin:{ADMIN}", "token.revoked")]


def test_a_token_this_server_did_not_sign_cannot_be_revoked(world: World) -> None:
    forged = issue_token(b"someone-else", role="customer", subject=ALICE, now=NOW)
    r = world.client.post(
        "/v1/admin/tokens/revoke", json={"token": forged}, headers=bearer("admin", ADMIN)
    )
    assert (r.status_code, r.json()["code"]) == (401, "auth.unauthorized")


def test_a_tokens_signature_is_checked_once_and_its_expiry_on_every_request(
    world: World,
) -> None:
    """``bearer_actor`` keeps the claims of a token it checked (api/deps.py, ``signed``); the
    expiry is still read against each request's clock, and a refused token is not kept."""
    ctx = world.app.state.ctx
    token = issue_token(SECRET, role="customer", subject=ALICE, now=NOW, ttl=timedelta(hours=1))
    header = f"Bearer {token}"
    assert ctx.signed.get(token) is None
    assert bearer_actor(ctx, header) == Actor("customer", ALICE)
    assert ctx.signed.get(token) is not None
    later = replace(ctx, clock=lambda: NOW + timedelta(hours=2))  # the same kept claims
    assert later.signed is ctx.signed
    with pytest.raises(Unauthorized) as expired:
        bearer_actor(later, header)
    assert expired.value.code == "auth.token_expired"
    forged = issue_token(b"x" * 32, role="customer", subject=ALICE, now=NOW)
    for _ in range(2):
        with pytest.raises(Unauthorized) as refused:
            bearer_actor(ctx, f"Bearer {forged}")
        assert refused.value.code == "auth.unauthorized"
    assert ctx.signed.get(forged) is None
