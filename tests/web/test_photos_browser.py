"""Photos in Chromium (Playwright) against a real uvicorn server with its worker, on SQLite and
PostgreSQL: a customer attaches a real PNG file on the request form with JavaScript off,
submits, and sees its thumbnail on the case page; an agent opens the case at the desk and sees
it under "Evidence", drawn by the browser (its natural width is the file's). axe-core checks
the pages that changed, with photos on them, in en and zh-CN at 375 px and 1280 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from refundry.adapters.photos import MemoryPhotoStorage
from refundry.services.access import Actor
from refundry.services.cases.photos import add_photos, case_photos
from tests.photo_files import png
from tests.web.browser import Live, new_page
from tests.web.conftest import CUSTOMER, NOW, THRESHOLD, link_token
from tests.web.test_accessibility import AXE, _problems, _violations
from tests.web.test_desk import AGENT, DESK, PASSWORD, add_agent
from tests.web.test_merchant import MERCHANT_NAME, add_merchants, returned_case


def _desk_sign_in(page: Page, live: Live, name: str = AGENT) -> None:
    page.goto(f"{live.base}/desk/signin")
    page.locator("#name").fill(name)
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action='/desk/signin'] button").click()


def test_a_photo_attached_on_the_request_form_is_on_the_desk_case_page(
    browser: Browser, live: Live, tmp_path: Path
) -> None:
    live.shop.app.state.ctx.runtime.photos = MemoryPhotoStorage()
    add_agent(live.shop)
    picture = tmp_path / "broken-handle.png"
    picture.write_bytes(png(24, 16, (220, 40, 40)))
    page = new_page(browser, "en", 375, js=False)
    page.goto(f"{live.base}/signin?token={link_token(CUSTOMER)}")
    page.get_by_role("button", name="Continue").click()
    page.goto(f"{live.base}/orders/{THRESHOLD}/request?line=Y")
    page.get_by_label("Quality problem").check()
    page.get_by_label("Refund only").check()
    page.get_by_label("Photos of the problem (optional)").set_input_files(str(picture))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your request")
    expect(page.locator("#photo-count")).to_have_text("1 attached")
    page.get_by_role("button", name="Submit request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request received")
    case_id = page.url.split("/cases/")[1].split("?")[0]
    thumb = page.get_by_role("img", name="Customer's photo 1")
    expect(thumb).to_be_visible()
    page.context.close()
    (photo,) = case_photos(live.shop.engine, case_id, DESK)
    assert (photo.kind, photo.size) == ("customer", picture.stat().st_size)

    desk = new_page(browser, "en", 1280)
    _desk_sign_in(desk, live)
    desk.goto(f"{live.base}/desk/cases/{case_id}")
    evidence = desk.get_by_role("region", name="Evidence")
    expect(evidence.get_by_role("heading", name="The customer's photos")).to_be_visible()
    img = evidence.get_by_role("img", name="Customer's photo 1")
    expect(img).to_be_visible()
    # the browser drew the PNG: once it has loaded (visible is not loaded: under CI's load the
    # check ran before the picture arrived), its natural width; a broken picture gives 0
    drawn = img.evaluate(
        "i => i.complete ? i.naturalWidth : new Promise(done => {"
        " i.addEventListener('load', () => done(i.naturalWidth));"
        " i.addEventListener('error', () => done(0)); })"
    )
    assert drawn == 24
    assert img.get_attribute("src") == f"/cases/{case_id}/photos/{photo.id}"
    desk.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("locale", "width"), [("en", 375), ("zh-CN", 1280)])
def test_the_pages_with_photos_have_no_serious_accessibility_violation(
    browser: Browser, live: Live, locale: str, width: int
) -> None:
    assert AXE.exists(), "axe-core is missing: run `make tools` (make test does)"
    shop = live.shop
    storage = MemoryPhotoStorage()
    shop.app.state.ctx.runtime.photos = storage
    add_agent(shop)
    add_merchants(shop)
    case_id = returned_case(shop)
    ctx = shop.app.state.ctx
    for who in (DESK, Actor("customer", CUSTOMER)):
        add_photos(ctx.desk, storage, case_id, actor=who, now=NOW, uploads=[png()])
    found: dict[str, list[dict[str, Any]]] = {}
    page = new_page(browser, locale, width, axe=True)
    page.goto(f"{live.base}/signin?token={link_token(CUSTOMER)}")
    page.locator("form[action='/signin'] button").click()
    page.goto(f"{live.base}/orders/{THRESHOLD}/request?line=Y")
    found["request form"] = _violations(page)
    page.locator("input[value='quality_issue']").check()
    page.locator("input[value='refund_only']").check()
    page.locator("#photos").set_input_files(
        files=[{"name": "x.png", "mimeType": "image/png", "buffer": b"not a picture"}]
    )
    page.locator("form[action$='/preview'] button").click()
    found["request form, photo refused"] = _violations(page)
    page.goto(f"{live.base}/cases/{case_id}")
    found["case page with photos"] = _violations(page)
    page.context.close()
    merchant = new_page(browser, locale, width, axe=True)
    _desk_sign_in(merchant, live, MERCHANT_NAME)
    merchant.goto(f"{live.base}/merchant/cases/{case_id}")
    found["merchant case with photos"] = _violations(merchant)
    merchant.context.close()
    desk = new_page(browser, locale, width, axe=True)
    _desk_sign_in(desk, live)
    desk.goto(f"{live.base}/desk/cases/{case_id}")
    found["desk case with evidence"] = _violations(desk)
    desk.context.close()
    assert _problems(found) == {}
