"""Passkeys in Chromium (Playwright) with a virtual authenticator, on SQLite and PostgreSQL.

The authenticator is Chromium's own (the DevTools WebAuthn domain: ctap2, internal transport,
user verification that succeeds), so the browser makes real credentials and real signed
answers for the real server; nothing on the server side is faked. The pages are browsed as
``http://localhost:<port>`` (a passkey's relying party is a domain, and http is allowed for
localhost only), which is the one origin the server's settings accept.

A customer registers a passkey and submits a refund request with it instead of a texted code;
then each way an answer can be wrong is refused with its own code and changes nothing: the
same answer replayed, an answer for another submission, an answer made on another origin, an
answer of a passkey removed meanwhile. Staff register a passkey at the desk and sign in with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from playwright.sync_api import Browser, CDPSession, Page, Request, Route, expect
from sqlalchemy import func, select

from refundry.demo import worked_examples as ex
from refundry.services.orders.ingest import ingest_order
from refundry.services.staff.accounts import add_staff
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, passkey_challenges, passkeys
from tests.web.browser import Live, free_port, new_page, serving
from tests.web.conftest import NOW, PHONE, Shop, link_token, make_shop
from tests.web.test_accessibility import AXE, _problems, _violations

LAMPS = "o-lamps"  # two lamps at ¥200: one of them back is above the ¥150 of the code


@dataclass
class Site:
    live: Live
    port: int


@pytest.fixture()
def site(db_url: str) -> Iterator[Site]:
    port = free_port()
    shop = make_shop(
        db_url, webauthn_rp_id="localhost", webauthn_origins=[f"http://localhost:{port}"]
    )
    _add_lamps(shop)
    try:
        with serving(shop, port=port, host="localhost") as live:
            yield Site(live, port)
    finally:
        shop.engine.dispose()


def _add_lamps(shop: Shop) -> None:
    doc = ex.order(LAMPS, [ex.line("L", 20000, quantity=2, title="Desk lamp")], 40000)
    with UnitOfWork(shop.engine) as uow:
        ingest_order(
            uow.conn, {"order": doc}, policy=shop.app.state.ctx.desk.policy, now=NOW - timedelta(1)
        )
        uow.commit()


def _authenticator(page: Page) -> CDPSession:
    """Chromium's virtual authenticator on this page: a platform passkey (fingerprint) that
    verifies the user and stores discoverable credentials."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp


def _customer_page(browser: Browser, site: Site) -> Page:
    page = new_page(browser, "en", 1024)
    _authenticator(page)
    base = site.live.base
    page.goto(f"{base}/signin?token={link_token('c-100')}")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("link", name="My orders")).to_be_visible()
    return page


def _register(page: Page, base: str, name: str = "My phone") -> None:
    page.goto(base)
    page.get_by_label("Name it (optional)").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_role("button", name="Make the passkey").click()
    expect(page.get_by_text("Your passkey was added.")).to_be_visible()
    expect(page.locator("#passkeys")).to_contain_text(name)


def _ask(page: Page, base: str, *, reason: str = "Wrong item sent", units: str = "1") -> None:
    """The request form for the lamps, then "check your answers", then submit: the step that
    asks for the passkey."""
    page.goto(f"{base}/orders/{LAMPS}/request")
    page.get_by_label("Desk lamp", exact=True).fill(units)
    page.get_by_label(reason).check()
    page.get_by_label("Refund only", exact=True).check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Submit request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")


def _state(shop: Shop) -> tuple[Any, ...]:
    """What a refusal must leave as it was: the cases, the passkeys' counters and use, the
    challenges spent."""
    with shop.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(cases)).scalar_one(),
            tuple(conn.execute(select(passkeys).order_by(passkeys.c.id))),
            conn.execute(
                select(func.count())
                .select_from(passkey_challenges)
                .where(passkey_challenges.c.used_at.is_not(None))
            ).scalar_one(),
        )


def _refusal(page: Page) -> str:
    return str(page.locator("#refused").get_attribute("data-code"))


class Posts:
    """The form posts the page sends to the submit route, as sent (the passkey's answer in
    them), optionally changed on the way by ``change``."""

    def __init__(self, page: Page) -> None:
        self.sent: list[list[tuple[str, str]]] = []
        self.change: dict[str, str] = {}
        page.route("**/request/submit", self._route)

    def _route(self, route: Route, request: Request) -> None:
        fields = parse_qsl(request.post_data or "", keep_blank_values=True)
        self.sent.append(fields)
        if not self.change:
            route.continue_()
            return
        changed = [(k, self.change.get(k, v)) for k, v in fields]
        route.continue_(post_data=urlencode(changed))


def test_a_customer_registers_a_passkey_and_submits_with_it_and_a_replay_is_refused(
    browser: Browser, site: Site
) -> None:
    shop, base = site.live.shop, site.live.base
    page = _customer_page(browser, site)
    _register(page, f"{base}/account/passkeys")
    posts = Posts(page)
    _ask(page, base)
    page.get_by_role("button", name="Use my passkey").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request received")
    assert shop.sms.last_to(PHONE) is None  # no code was texted: the passkey was the check
    ((key,),) = [_state(shop)[1]]
    assert key.sign_count > 0 and key.last_used_at is not None
    with shop.engine.connect() as conn:
        opened = conn.execute(select(cases.c.id, cases.c.amount)).all()
    assert [amount for _, amount in opened] == [20000]

    # the same answer again, for the same request of the other lamp (the units are free)
    before = _state(shop)
    replay = page.request.post(
        f"{base}/orders/{LAMPS}/request/submit",
        data=urlencode(posts.sent[-1]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert replay.status == 422
    assert 'data-code="identity.passkey_challenge_used"' in replay.text()
    assert _state(shop) == before
    page.context.close()


def test_an_answer_given_for_another_submission_is_refused_and_changes_nothing(
    browser: Browser, site: Site
) -> None:
    shop, base = site.live.shop, site.live.base
    page = _customer_page(browser, site)
    _register(page, f"{base}/account/passkeys")
    _ask(page, base, reason="Wrong item sent")
    before = _state(shop)
    posts = Posts(page)
    posts.change = {"reason": "not_received"}  # the answer was asked for "wrong item sent"
    page.get_by_role("button", name="Use my passkey").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    assert _refusal(page) == "identity.passkey_challenge_mismatch"
    assert _state(shop) == before
    # the page offers a fresh challenge for what was asked: that one goes through
    posts.change = {}
    page.get_by_role("button", name="Use my passkey").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request received")
    page.context.close()


def test_an_answer_made_on_another_origin_is_refused_and_changes_nothing(
    browser: Browser, site: Site
) -> None:
    shop = site.live.shop
    page = _customer_page(browser, site)
    _register(page, f"{site.live.base}/account/passkeys")
    # the same app on another port: same relying party (localhost), an origin not configured
    with serving(shop, host="localhost") as other:
        _ask(page, other.base)
        before = _state(shop)
        page.get_by_role("button", name="Use my passkey").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
        assert _refusal(page) == "identity.passkey_origin"
        assert _state(shop) == before
    page.context.close()


def test_a_removed_passkey_is_refused_and_changes_nothing(browser: Browser, site: Site) -> None:
    shop, base = site.live.shop, site.live.base
    page = _customer_page(browser, site)
    _register(page, f"{base}/account/passkeys")
    _ask(page, base)  # the step holds the passkey's options
    other = page.context.new_page()
    other.goto(f"{base}/account/passkeys")
    other.get_by_role("button", name="Remove passkey My phone").click()
    expect(other.get_by_text("The passkey was removed.")).to_be_visible()
    expect(other.locator("#no-passkeys")).to_be_visible()
    before = _state(shop)
    page.get_by_role("button", name="Use my passkey").click()
    # no passkey left: the code is texted, and the refusal said
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter the code we sent you")
    expect(page.get_by_role("alert")).to_contain_text(
        "That passkey is not registered here, or was removed."
    )
    assert _state(shop) == before
    assert shop.sms.last_to(PHONE) is not None
    page.context.close()


def test_staff_register_a_passkey_at_the_desk_and_sign_in_with_it(
    browser: Browser, site: Site
) -> None:
    shop, base = site.live.shop, site.live.base
    add_staff(shop.engine, role="agent", name="ana", password="correct horse battery", now=NOW)
    page = new_page(browser, "en", 1280)
    _authenticator(page)
    page.goto(f"{base}/desk/signin")
    page.get_by_label("Name").fill("ana")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("link", name="Work queue")).to_be_visible()
    _register(page, f"{base}/desk/passkeys", name="Desk laptop")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{base}/desk")
    expect(page).to_have_url(f"{base}/desk/signin")

    page.get_by_role("button", name="Use a passkey instead").click()
    page.get_by_role("button", name="Use my passkey").click()
    expect(page).to_have_url(f"{base}/desk")
    expect(page.get_by_role("link", name="Work queue")).to_be_visible()
    with shop.engine.connect() as conn:
        (key,) = conn.execute(select(passkeys)).all()
    assert key.owner == "agent:ana" and key.last_used_at is not None
    page.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_javascript_the_passkey_button_stays_disabled_and_the_page_says_why(
    browser: Browser, site: Site
) -> None:
    """The button is rendered disabled and only passkey.js enables it, once its handler is on:
    a click that comes before the script has run is not silently lost (CI once clicked
    "Make the passkey" before the script had loaded, and nothing happened)."""
    base = site.live.base
    page = new_page(browser, "en", 1024, js=False)
    page.goto(f"{base}/signin?token={link_token('c-100')}")
    page.get_by_role("button", name="Continue").click()
    page.goto(f"{base}/account/passkeys")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("button", name="Make the passkey")).to_be_disabled()
    said = page.locator("noscript p")  # Playwright's text matching skips <noscript>: read it
    expect(said).to_be_visible()
    assert said.text_content() == "This browser cannot make passkeys."
    page.context.close()

    page = new_page(browser, "en", 1024)  # with JavaScript the script enables it
    _authenticator(page)
    page.goto(f"{base}/signin?token={link_token('c-100')}")
    page.get_by_role("button", name="Continue").click()
    page.goto(f"{base}/account/passkeys")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("button", name="Make the passkey")).to_be_enabled()
    expect(page.locator("noscript p")).to_be_hidden()
    page.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("locale", "width"), [("en", 375), ("zh-CN", 1280)])
def test_the_passkey_pages_have_no_serious_accessibility_violation(
    browser: Browser, site: Site, locale: str, width: int
) -> None:
    assert AXE.exists(), "axe-core is missing: run `make tools` (make test does)"
    base = site.live.base
    page = new_page(browser, locale, width, axe=True)
    _authenticator(page)
    found: dict[str, list[dict[str, Any]]] = {}
    page.goto(f"{base}/signin?token={link_token('c-100')}")
    page.locator("form[action='/signin'] button").click()
    page.goto(f"{base}/account/passkeys")
    found["passkeys, none"] = _violations(page)
    page.locator("form[action$='/passkeys/new'] button").click()
    found["add a passkey"] = _violations(page)
    page.locator("[data-passkey-start]").click()
    page.wait_for_url(f"{base}/account/passkeys?done=added")
    found["passkeys, one"] = _violations(page)
    page.goto(f"{base}/orders/{LAMPS}/request")
    page.locator("input[name='units.L']").fill("1")
    page.locator("input[value='wrong_item']").check()
    page.locator("input[value='refund_only']").check()
    page.locator("form[action$='/preview'] button").click()
    page.locator("form[action$='/submit'] button").click()
    found["passkey step"] = _violations(page)
    page.goto(f"{base}/desk/signin")
    page.locator("#passkey-signin").click()
    found["desk passkey sign-in"] = _violations(page)
    assert _problems(found) == {}
    page.context.close()
