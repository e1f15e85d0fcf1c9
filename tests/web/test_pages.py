"""The customer's pages over HTTP (TestClient), on SQLite and PostgreSQL: sign-in, what each
page shows, the request's steps, and what is refused. tests/web/test_browser.py drives the
same pages in Chromium."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from refundry.api.app import create_app
from refundry.cli import app as cli
from refundry.demo import worked_examples as ex
from refundry.services.access import Actor
from refundry.services.cases.views import list_cases
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from tests.web.conftest import (
    COUPON,
    CUSTOMER,
    FOREIGN,
    MUGS,
    NOW,
    OTHER,
    PHONE,
    SECRET,
    THRESHOLD,
    Shop,
    add_campaign_order,
    csrf_of,
    link_token,
    settings,
    signed_in,
)

ASK_Y = {"units.X": "0", "units.Y": "1", "reason": "changed_mind", "kind": "refund_only"}
ASK_X = {"units.X": "1", "units.Y": "0", "reason": "changed_mind", "kind": "refund_only"}


def _cases(shop: Shop, customer: str = CUSTOMER) -> list[str]:
    return [c.id for c in list_cases(shop.engine, Actor("customer", customer)).items]


def _post(client: TestClient, form_page: str, path: str, data: dict[str, str]) -> Any:
    """Post ``data`` to ``path`` with the form token of ``form_page``."""
    token = csrf_of(client.get(form_page).text)
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def test_the_sign_in_link_opens_a_session_cookie(shop: Shop) -> None:
    client = shop.client()
    page = client.get("/signin", params={"token": link_token(CUSTOMER)})
    assert "rf_session" not in page.headers.get("set-cookie", "")  # a GET signs nobody in
    done = client.post(
        "/signin",
        data={"token": link_token(CUSTOMER), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/orders")
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("rf_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert client.get("/orders").status_code == 200


def test_a_long_lived_token_is_no_sign_in_link(shop: Shop) -> None:
    client = shop.client()
    page = client.get("/signin", params={"token": "x"})
    long_lived = link_token(CUSTOMER, minutes=60 * 24)
    done = client.post("/signin", data={"token": long_lived, "csrf_token": csrf_of(page.text)})
    assert done.status_code == 403
    assert "rf_session" not in done.headers.get("set-cookie", "")
    assert client.get("/orders", follow_redirects=False).headers["location"] == "/signin"


def test_a_forged_link_is_refused(shop: Shop) -> None:
    client = shop.client()
    page = client.get("/signin")
    forged = link_token(CUSTOMER)[:-3] + "abc"
    done = client.post("/signin", data={"token": forged, "csrf_token": csrf_of(page.text)})
    assert done.status_code == 401
    assert "not valid any more" in done.text


def test_pages_carry_a_strict_content_security_policy(shop: Shop) -> None:
    client = signed_in(shop.client())
    page = client.get(f"/orders/{THRESHOLD}")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<style" not in page.text and "<script" not in page.text and "style=" not in page.text
    assert client.get("/static/refundry.css").status_code == 200


def test_the_order_list_holds_the_customers_orders_only(shop: Shop) -> None:
    page = signed_in(shop.client()).get("/orders")
    assert f"/orders/{THRESHOLD}" in page.text and f"/orders/{MUGS}" in page.text
    assert FOREIGN not in page.text and "lamp" not in page.text


def test_another_customers_order_and_case_are_not_found(shop: Shop) -> None:
    theirs = signed_in(shop.client(), OTHER)
    opened = _post(
        theirs,
        f"/orders/{FOREIGN}/request?line=Z",
        f"/orders/{FOREIGN}/request/submit",
        {"units.Z": "1", "reason": "changed_mind", "kind": "refund_only"},
    )
    assert opened.status_code == 303
    case_id = _cases(shop, OTHER)[0]
    mine = signed_in(shop.client())
    for path in (f"/orders/{FOREIGN}", f"/orders/{FOREIGN}/request", f"/cases/{case_id}"):
        page = mine.get(path)
        assert page.status_code == 404, path
        assert "Page not found" in page.text and "lamp" not in page.text
    preview = _post(
        mine,
        "/orders",
        f"/orders/{FOREIGN}/request/preview",
        {"units.Z": "1", "reason": "changed_mind", "kind": "refund_only"},
    )
    assert preview.status_code == 404
    assert _cases(shop) == []


def test_the_order_page_shows_what_each_unit_paid_and_the_coupon(shop: Shop) -> None:
    page = signed_in(shop.client()).get(f"/orders/{MUGS}")
    text = re.sub(r"\s+", " ", page.text)
    assert "Blue mug" in text
    assert "CN¥96.66, CN¥96.67, CN¥96.67" in text  # ¥290 over three units, SPEC §1
    assert "Coupon CP-10: −CN¥10.00" in text
    assert f'href="/orders/{MUGS}/request?line=M"' in text


def test_the_preview_shows_the_money_per_tender_and_the_clawback(shop: Shop) -> None:
    client = signed_in(shop.client())
    page = _post(
        client, f"/orders/{THRESHOLD}/request?line=Y", f"/orders/{THRESHOLD}/request/preview", ASK_Y
    )
    text = re.sub(r"\s+", " ", page.text)
    assert "Check your request" in text
    assert '<th scope="row">Alipay</th><td>CN¥100.00</td>' in text
    assert "Discount you no longer qualify for: −CN¥66.67" in text
    assert _cases(shop) == []  # a preview writes nothing


def test_zh_cn_is_chosen_from_accept_language_and_by_the_switch(shop: Shop) -> None:
    client = signed_in(shop.client(**{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}))
    page = client.get(f"/orders/{THRESHOLD}")
    assert '<html lang="zh-CN">' in page.text and "购买的商品" in page.text
    assert "¥500.00" in page.text and "CN¥" not in page.text
    switched = client.post(
        "/language",
        data={"lang": "en", "next": f"/orders/{THRESHOLD}", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert switched.headers["location"] == f"/orders/{THRESHOLD}"
    page = client.get(f"/orders/{THRESHOLD}")
    assert '<html lang="en">' in page.text and "What you bought" in page.text
    elsewhere = client.post(
        "/language",
        data={"lang": "en", "next": "//evil.example/", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/orders"  # never off the site


def test_a_form_post_without_its_token_is_refused_and_changes_nothing(shop: Shop) -> None:
    client = signed_in(shop.client())
    for data in (ASK_Y, {**ASK_Y, "csrf_token": "0" * 64}):
        refused = client.post(f"/orders/{THRESHOLD}/request/submit", data=data)
        assert refused.status_code == 403
        assert "Nothing was changed" in refused.text
    other = signed_in(shop.client(), OTHER)  # another session's token is not this one's
    stolen = csrf_of(other.get("/orders").text)
    refused = client.post(
        f"/orders/{THRESHOLD}/request/submit", data={**ASK_Y, "csrf_token": stolen}
    )
    assert refused.status_code == 403
    assert _cases(shop) == []


def test_a_form_without_units_answers_with_the_error_summary(shop: Shop) -> None:
    client = signed_in(shop.client())
    page = _post(
        client,
        f"/orders/{THRESHOLD}/request",
        f"/orders/{THRESHOLD}/request/preview",
        {"units.X": "0", "units.Y": "7", "reason": "", "kind": "refund_only"},
    )
    assert page.status_code == 422
    text = page.text
    assert "There is a problem" in text
    assert 'href="#units-1"' in text and "from 0 to 1 for Item Y" in text
    assert 'href="#reason"' in text


def test_a_refund_under_the_code_threshold_opens_the_case(shop: Shop) -> None:
    client = signed_in(shop.client())
    done = _post(
        client,
        f"/orders/{THRESHOLD}/request?line=Y",
        f"/orders/{THRESHOLD}/request/submit",
        {**ASK_Y, "description": "<script>alert('x')</script>"},
    )
    assert done.status_code == 303
    (case_id,) = _cases(shop)
    assert done.headers["location"] == f"/cases/{case_id}?opened=1"
    page = client.get(done.headers["location"])
    assert "Request received" in page.text and "CN¥100.00" in page.text
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert re.search(r"<li><time [^>]+>[^<]+</time> Requested", page.text)


def test_a_larger_refund_asks_for_the_code_inline(shop: Shop) -> None:
    client = signed_in(shop.client())
    step = _post(
        client, f"/orders/{THRESHOLD}/request?line=X", f"/orders/{THRESHOLD}/request/submit", ASK_X
    )
    assert step.status_code == 200
    assert "Enter the code we sent you" in step.text
    assert _cases(shop) == []
    sent = shop.sms.last_to(PHONE)
    assert sent is not None
    code = re.search(r"(\d{6})", sent.text).group(1)  # type: ignore[union-attr]
    code_id = re.search(r'name="code_id" value="([^"]+)"', step.text).group(1)  # type: ignore[union-attr]
    token = csrf_of(step.text)
    wrong = "000000" if code != "000000" else "111111"
    again = client.post(
        f"/orders/{THRESHOLD}/request/submit",
        data={**ASK_X, "code_id": code_id, "code": wrong, "csrf_token": token},
    )
    assert again.status_code == 422 and "The code is not right" in again.text
    assert _cases(shop) == []
    done = client.post(
        f"/orders/{THRESHOLD}/request/submit",
        data={**ASK_X, "code_id": code_id, "code": code, "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert len(_cases(shop)) == 1


def test_without_a_session_the_pages_send_you_to_sign_in(shop: Shop) -> None:
    client = shop.client()
    for path in ("/orders", f"/orders/{THRESHOLD}"):
        page = client.get(path, follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/signin")
    assert "Open your orders from the shop" in client.get("/signin").text


def test_refundry_token_minutes_makes_a_sign_in_link(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop's link token from the CLI (`refundry token customer c-100 --minutes 5`) signs
    in; a token of days does not (the server's real clock, as `refundry serve` runs)."""
    app = create_app(settings(db_url))
    monkeypatch.setenv("REFUNDRY_SECRET", SECRET)
    for args, status in ((["--minutes", "5"], 303), (["--days", "1"], 403)):
        made = CliRunner().invoke(cli, ["token", "customer", CUSTOMER, *args])
        assert made.exit_code == 0, made.output
        client = TestClient(app)
        page = client.get("/signin", params={"token": made.stdout.strip()})
        done = client.post(
            "/signin",
            data={"token": made.stdout.strip(), "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert done.status_code == status, args


def test_the_case_page_shows_what_comes_back_and_the_reissued_coupon(shop: Shop) -> None:
    client = signed_in(shop.client())
    ask = {"units.A": "1", "reason": "quality_issue", "kind": "refund_only"}
    preview = _post(
        client, f"/orders/{COUPON}/request?line=A", f"/orders/{COUPON}/request/preview", ask
    )
    assert "Expired coupon reissued" in preview.text
    step = _post(
        client, f"/orders/{COUPON}/request?line=A", f"/orders/{COUPON}/request/submit", ask
    )
    sent = shop.sms.last_to(PHONE)
    assert sent is not None
    code = re.search(r"(\d{6})", sent.text)
    code_id = re.search(r'name="code_id" value="([^"]+)"', step.text)
    assert code is not None and code_id is not None
    done = client.post(
        f"/orders/{COUPON}/request/submit",
        data={
            **ask,
            "code_id": code_id.group(1),
            "code": code.group(1),
            "csrf_token": csrf_of(step.text),
        },
    )
    text = re.sub(r"\s+", " ", done.text)
    assert "What comes back" in text
    assert '<th scope="row">Alipay</th><td>CN¥270.00</td><td>Being sent</td>' in text
    assert "Expired coupon reissued" in text


def _ingest(shop: Shop, *orders: dict[str, Any]) -> None:
    with UnitOfWork(shop.engine) as uow:
        for doc in orders:
            ingest_order(uow.conn, {"order": doc}, policy=shop.app.state.ctx.desk.policy, now=NOW)
        uow.commit()


def test_the_preview_gives_each_reason_in_the_customers_language(shop: Shop) -> None:
    """Issue #13 point 1: the claw-back of 满1000返200 and the kept gift with their reasons in
    words, in zh-CN from Accept-Language and in English (the plan's own text)."""
    _ingest(shop, ex.CASHBACK, ex.GIFT)
    cashback = {"units.A": "1", "units.B": "0", "reason": "changed_mind", "kind": "refund_only"}
    gift = {**ASK_Y, "units.G": "0"}
    zh = signed_in(shop.client(**{"Accept-Language": "zh-CN,zh;q=0.9"}))
    en = signed_in(shop.client())
    pages = {}
    for lang, client in (("zh", zh), ("en", en)):
        for order_id, ask, line in (("o-1000-200", cashback, "A"), ("o-gift", gift, "Y")):
            page = _post(
                client,
                f"/orders/{order_id}/request?line={line}",
                f"/orders/{order_id}/request/preview",
                ask,
            )
            assert page.status_code == 200
            pages[lang, order_id] = html.unescape(re.sub(r"\s+", " ", page.text))
    assert (
        "保留商品的金额（实付 ¥200.00）在 MF-1000-200 中可得返现 ¥0.00，而不是 ¥200.00："
        "已发放的返现将被扣回" in pages["zh", "o-1000-200"]
    )
    assert (
        "保留商品的金额未达到 MZ-500 的门槛 ¥500.00，且赠品 G 未退回：按赠品的申报价值从退款中扣除"
        in pages["zh", "o-gift"]
    )
    for order_id in ("o-1000-200", "o-gift"):
        assert "the kept basket" not in pages["zh", order_id]
    assert (
        "the kept basket (20000, paid) earns 0 from MF-1000-200, not 20000: "
        "the granted reward is clawed back" in pages["en", "o-1000-200"]
    )
    assert (
        "the kept basket no longer reaches MZ-500's threshold 50000 and gift G is kept: "
        "its declared value is deducted" in pages["en", "o-gift"]
    )


def test_points_on_the_order_page_are_grouped_per_locale(shop: Shop) -> None:
    add_campaign_order(shop)
    client = signed_in(shop.client())
    page = client.get("/orders/o-campaign")
    assert "Points earned: 1,250" in page.text
    assert "(1,000 points)" in page.text  # the points tender
