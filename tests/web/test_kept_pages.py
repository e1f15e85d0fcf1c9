"""Kept order pages (refundry/web/kept_pages.py), on SQLite and PostgreSQL: answered from memory
with one read while the customer's data has not moved, drawn again as soon as it has, and
never to anyone but the customer they were drawn for."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from refundry.api.app import create_app
from refundry.api.auth import token_claims
from refundry.services.tokens import revoke_token
from refundry.web.session import SESSION_COOKIE
from tests.tools import statements
from tests.web.conftest import (
    CUSTOMER,
    MUGS,
    NOW,
    OTHER,
    THRESHOLD,
    Shop,
    csrf_of,
    settings,
    signed_in,
)

ORDER = f"/orders/{THRESHOLD}"


def _same_page(html: str) -> str:
    """The page with its per-browser form token left out."""
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token"', html)


def _drawn(db_url: str, client: TestClient, path: str) -> str:
    """``path`` as an app that keeps nothing draws it now, for ``client``'s session."""
    fresh = create_app(settings(db_url, page_cache_entries=0), clock=lambda: NOW)
    try:
        other = TestClient(fresh)
        other.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE])
        page = other.get(path)
        assert page.status_code == 200, page.text
        return _same_page(page.text)
    finally:
        fresh.state.ctx.engine.dispose()


def test_a_kept_page_is_answered_with_one_read_and_is_the_page_drawn(
    db_url: str, shop: Shop
) -> None:
    client = signed_in(shop.client())
    with statements(shop.engine) as drawing:
        first = client.get(ORDER)
    with statements(shop.engine) as keeping:
        again = client.get(ORDER)
    assert first.status_code == again.status_code == 200
    assert len(drawing) > 3  # the order's reads
    assert len(keeping) == 1 and "audit_heads" in keeping[0], keeping
    assert _same_page(again.text) == _same_page(first.text) == _drawn(db_url, client, ORDER)
    for header in ("content-security-policy", "cache-control", "x-request-id"):
        assert header in again.headers
    assert again.headers["content-language"] == "en"


def test_the_page_is_drawn_again_once_the_customers_data_moves(db_url: str, shop: Shop) -> None:
    client = signed_in(shop.client())
    before = client.get(ORDER).text
    assert "No after-sales case on this order." in before
    ask = {"units.X": "0", "units.Y": "1", "reason": "quality_issue", "kind": "refund_only"}
    token = csrf_of(client.get(f"{ORDER}/request?line=Y").text)
    opened = client.post(f"{ORDER}/request/submit", data={**ask, "csrf_token": token})
    assert opened.status_code == 200, opened.text
    after_opening = client.get(ORDER).text
    assert "No after-sales case on this order." not in after_opening
    assert _same_page(after_opening) == _drawn(db_url, client, ORDER)
    # the worker pays the approved case: the refund's gateway answer moves the data again
    shop.app.state.ctx.runtime.relay().drain()
    paid = client.get(ORDER).text
    assert paid != after_opening
    assert _same_page(paid) == _drawn(db_url, client, ORDER)


def test_another_customer_never_gets_a_kept_page(shop: Shop) -> None:
    owner = signed_in(shop.client())
    assert owner.get(ORDER).status_code == 200  # kept for c-100
    other = signed_in(shop.client(), OTHER)
    page = other.get(ORDER)
    assert page.status_code == 404
    assert "What you bought" not in page.text
    anonymous = shop.client().get(ORDER, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/signin"


def test_a_revoked_session_gets_no_kept_page(shop: Shop) -> None:
    client = signed_in(shop.client())
    assert client.get(ORDER).status_code == 200
    ctx = shop.app.state.ctx
    claims = token_claims(
        ctx.settings.token_secrets(),
        client.cookies[SESSION_COOKIE],
        current=ctx.settings.token_key_id,
    )
    assert revoke_token(
        shop.engine,
        jti=str(claims["jti"]),
        subject=CUSTOMER,
        expires_at=NOW + timedelta(days=1),
        actor="admin:test",
        reason="lost phone",
        now=NOW,
    )
    shop.app.state.ctx.revocations.forget()
    gone = client.get(ORDER, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/signin"


def test_a_kept_page_carries_the_browsers_own_form_token(shop: Shop) -> None:
    first = signed_in(shop.client())
    assert first.get(ORDER).status_code == 200
    second = signed_in(shop.client())  # the same customer in another browser
    with statements(shop.engine) as seen:
        page = second.get(ORDER)
    assert len(seen) == 1  # answered from memory
    token = csrf_of(page.text)
    assert token != csrf_of(first.get(ORDER).text)
    switched = second.post(
        "/language",
        data={"lang": "zh-CN", "next": ORDER, "csrf_token": token},
        follow_redirects=False,
    )
    assert switched.status_code == 303, switched.text
    assert second.get(ORDER).headers["content-language"] == "zh-CN"


def test_each_language_is_kept_apart(shop: Shop) -> None:
    client = signed_in(shop.client())
    english = client.get(ORDER)
    chinese = client.get(ORDER, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert english.headers["content-language"] == "en"
    assert chinese.headers["content-language"] == "zh-CN"
    assert "What you bought" in english.text and "What you bought" not in chinese.text
    with statements(shop.engine) as seen:
        again = client.get(ORDER, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert len(seen) == 1 and _same_page(again.text) == _same_page(chinese.text)


def test_keeping_nothing_draws_every_page(db_url: str, shop: Shop) -> None:
    app = create_app(settings(db_url, page_cache_entries=0), clock=lambda: NOW)
    try:
        client = signed_in(TestClient(app))
        client.get(f"/orders/{MUGS}")
        with statements(app.state.ctx.engine) as seen:
            assert client.get(f"/orders/{MUGS}").status_code == 200
        assert len(seen) > 3
        assert len(app.state.ctx.kept) == 0
    finally:
        app.state.ctx.engine.dispose()


def test_while_serving_on_postgresql_the_version_is_read_on_the_loop(
    db_url: str, shop: Shop
) -> None:
    """With the app's lifespan running (as under uvicorn), PostgreSQL's version read goes over
    the loop's own connections (refundry/store/loop_reads.py), not the engine; a connection
    the server drops is opened again and the page is still right."""
    with TestClient(shop.app) as served:
        client = signed_in(served)
        drawn = client.get(ORDER).text
        with statements(shop.engine) as seen:
            kept = client.get(ORDER)
        assert _same_page(kept.text) == _same_page(drawn)
        on_postgresql = shop.engine.dialect.name == "postgresql"
        assert len(seen) == (0 if on_postgresql else 1), seen
        if on_postgresql:
            with shop.engine.connect() as conn:  # the server drops the loop's connections
                dropped = conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND query LIKE '%%audit_heads.seq%%'"
                ).all()
            assert dropped and all(ok for (ok,) in dropped)
            assert _same_page(client.get(ORDER).text) == _same_page(drawn)  # drawn again
        ask = {"units.X": "0", "units.Y": "1", "reason": "quality_issue", "kind": "refund_only"}
        token = csrf_of(client.get(f"{ORDER}/request?line=Y").text)
        client.post(f"{ORDER}/request/submit", data={**ask, "csrf_token": token})
        moved = client.get(ORDER).text
        assert "No after-sales case on this order." not in moved
        with statements(shop.engine) as seen:
            assert _same_page(client.get(ORDER).text) == _same_page(moved)
        assert len(seen) == (0 if on_postgresql else 1)
