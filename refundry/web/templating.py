"""Jinja2 templates in two languages, the locale of a request, and the page response.

The templates are written in English with ``{% trans %}``/``_()``; the zh-CN catalog is
``locale/zh_CN/LC_MESSAGES/messages.po`` (gettext, read with Babel at start). A request's
locale is the ``rf_lang`` cookie (the switch in the page header) or else the best match of
``Accept-Language`` (Babel's ``negotiate_locale``), English when nothing matches.

Every page answer carries the same headers: a strict Content-Security-Policy (only this
site's own style sheet and script, no inline code, forms post here only, no framing), no
sniffing, no referrer (a sign-in link's token must not leak), and no caching of personal
pages.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from refundry.api.deps import context
from refundry.web import formats
from refundry.web.reasons import REQUEST_REASONS, reason_in_words, risk_in_words
from refundry.web.session import CSRF_FIELD, csrf_cookie, csrf_token, session_actor

__all__ = [
    "LANG_COOKIE",
    "LOCALES",
    "SECURITY_HEADERS",
    "environment",
    "locale_from",
    "locale_of",
    "page_response",
    "render",
    "render_text",
]

HERE = Path(__file__).parent
LOCALES = ("zh-CN", "en")
LANG_COOKIE = "rf_lang"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _translations(locale: str) -> NullTranslations:
    if locale == "en":
        return NullTranslations()
    po = HERE / "locale" / locale.replace("-", "_") / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale.replace("-", "_"))
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


@cache
def environment(locale: str, zone: str) -> Environment:
    """The templates with ``locale``'s messages and filters, times written in ``zone`` (one
    environment per locale and zone)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        auto_reload=False,  # the templates ship with the package: no stat per page
        autoescape=select_autoescape(("html",), default=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    translations = _translations(locale)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["money"] = lambda amount, currency: formats.money(amount, currency, locale)

    def in_words(words: Callable[..., str]) -> Callable[[str, str], str]:
        """A filter showing an English reason the domain wrote in the page's language (the
        text as written on English pages)."""
        if locale == "en":
            return lambda reason, currency: reason
        return lambda reason, currency: words(
            reason, translations.gettext, lambda amount: formats.money(amount, currency, locale)
        )

    env.filters["in_words"] = in_words(reason_in_words)  # a plan's reason
    env.filters["risk_in_words"] = in_words(risk_in_words)  # a risk rule's (domain/risk.py)
    env.globals["request_reasons"] = REQUEST_REASONS
    shown_in = ZoneInfo(zone)
    env.filters["when"] = lambda at, fmt="medium": formats.datetime_text(
        at, locale, shown_in, fmt=fmt
    )
    env.filters["percent"] = lambda ratio: formats.percent(ratio, locale)
    env.filters["number"] = lambda count: formats.number(count, locale)
    env.filters["duration"] = lambda seconds: formats.duration(seconds, locale)
    env.globals["locale"] = locale
    env.globals["locales"] = LOCALES
    return env


def _accepted(header: str) -> list[str]:
    """Accept-Language's tags, most wanted first (q=0 left out)."""
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            weighted.append((-q, i, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def locale_of(request: Request) -> str:
    return locale_from(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language", ""))


def locale_from(chosen: str | None, accept_language: str) -> str:
    """The pages' locale: the switch's cookie when it names one, else ``Accept-Language``'s
    best match (a browser sends the same header every time: the match is remembered)."""
    return chosen if chosen in LOCALES else _negotiated(accept_language)


@lru_cache(maxsize=512)
def _negotiated(accept_language: str) -> str:
    wanted = _accepted(accept_language)
    # zh, zh-Hans, zh-CN … all read the zh-CN pages
    aliases = {"zh": "zh-CN", "zh-hans": "zh-CN", "zh-hans-cn": "zh-CN", "zh-sg": "zh-CN"}
    found = negotiate_locale(wanted, list(LOCALES), sep="-", aliases=aliases)
    return found if found in LOCALES else "en"


def render_text(request: Request, template: str, **values: Any) -> str:
    """``template`` (a page or a fragment of one) in the request's locale, with the
    signed-in actor and the form token."""
    ctx = context(request)
    if "actor" not in values:
        values["actor"] = session_actor(ctx, request)
    values.setdefault("csrf_field", CSRF_FIELD)
    values.setdefault("csrf", csrf_token(ctx, request))
    values.setdefault("here", request.url.path)
    values.setdefault("photo_limits", ctx.desk.photo_limits)  # the photo inputs' hints
    env = environment(locale_of(request), ctx.settings.display_timezone)
    return env.get_template(template).render(**values)


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` in the request's locale, with the signed-in actor, the form token and
    the security headers."""
    return page_response(request, render_text(request, template, **values), status)


def page_response(request: Request, body: str, status: int = 200) -> HTMLResponse:
    """A page's answer: ``body`` with the security headers, its language and the form
    token's cookie when this request set one up."""
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    response.headers["Content-Language"] = locale_of(request)
    csrf_cookie(request, response)
    return response
