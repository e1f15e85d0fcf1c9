"""Signing in from the shop's link, signing out, and the language switch.

``GET /signin?token=…`` shows a "Continue" button (a link followed by a mail scanner or a
prefetch signs nobody in, and the token leaves the address bar at once); its form posts the
token to ``POST /signin``, which opens the session (refundry/web/session.py) and sends the
customer to the order list. Without a token, the page says how to sign in.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ContextDep
from refundry.services import access
from refundry.web.pages import page_router
from refundry.web.session import CheckedForm, end_session, read_link, start_session
from refundry.web.templating import LANG_COOKIE, LOCALES, render

__all__ = ["router"]

router = page_router()


def local_path(value: object, default: str = "/orders") -> str:
    """Where a form may send the browser back to: a path on this site only."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return default


@router.get("/")
def home() -> Response:
    return RedirectResponse("/orders", status_code=303)


@router.get("/signin")
def signin_page(request: Request, token: str = "") -> Response:
    return render(request, "account/signin.html", token=token[:2000])


@router.post("/signin")
def signin(request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    token = form.get("token")
    actor = read_link(ctx, token.strip() if isinstance(token, str) else "")
    access.require(actor, "session.sign_in_link")
    response = RedirectResponse("/orders", status_code=303)
    start_session(ctx, request, response, actor)
    return response


@router.post("/signout")
def signout(form: CheckedForm) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    end_session(response)
    return response


@router.post("/language")
def language(request: Request, form: CheckedForm) -> Response:
    chosen = form.get("lang")
    response = RedirectResponse(local_path(form.get("next")), status_code=303)
    if chosen in LOCALES:
        response.set_cookie(
            LANG_COOKIE,
            str(chosen),
            max_age=365 * 24 * 3600,
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="lax",
            path="/",
        )
    return response
