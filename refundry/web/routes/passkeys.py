"""Passkeys on the pages: a person's list (add, remove) and the desk's sign-in with one.

``/account/passkeys`` (a customer) and ``/desk/passkeys`` (staff) list the signed-in person's
passkeys (services/passkeys.py). Adding one is two steps: "Add a passkey" posts its name to
``…/new``, which answers the page holding the browser's options (a fresh challenge); its
button (static/passkey.js) makes the passkey and posts it to ``…`` where the server verifies
and keeps it. "Remove" posts to ``…/{id}/remove``. A staff passkey is discoverable:
``/desk/signin/passkey`` asks the browser for any passkey of this site and opens a desk
session for its owner (services/staff/accounts.py ``sign_in_with_passkey``). A refusal comes
back on the page with its message, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ApiContext, ContextDep
from refundry.api.problems import status_for
from refundry.domain.errors import RefundryError
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.passkeys import (
    assertion_options,
    list_passkeys,
    register_passkey,
    registration_options,
    remove_passkey,
)
from refundry.services.staff.accounts import sign_in_with_passkey
from refundry.web.pages import NotSignedIn, page_router
from refundry.web.routes.desk import desk_home
from refundry.web.session import CheckedForm, session_actor, start_session
from refundry.web.templating import render

__all__ = ["router"]

router = page_router()

CUSTOMER_BASE, DESK_BASE = "/account/passkeys", "/desk/passkeys"
CREDENTIAL_MAX = 64 * 1024  # an attestation with certificates is a few kilobytes


class _NotHere(Exception):
    """Not signed in on this side (a customer at the desk's list, staff at the customer's)."""


def _owner(ctx: ApiContext, request: Request, base: str) -> Actor:
    """The person whose passkeys ``base`` lists: a customer's session on the customer's
    pages, a staff member's at the desk; anyone else is sent to that side's sign-in."""
    actor = session_actor(ctx, request)
    if actor is None or (actor.role == "customer") == (base == DESK_BASE):
        raise NotSignedIn if base == CUSTOMER_BASE else _NotHere
    access.require(actor, "identity.passkeys")
    return actor


def _or_signin(answer: Callable[[], Response]) -> Response:
    try:
        return answer()
    except _NotHere:
        return RedirectResponse("/desk/signin", status_code=303)


def _field(form: object, name: str, limit: int) -> str:
    value = form.get(name) if hasattr(form, "get") else None
    return value[:limit] if isinstance(value, str) else ""


def _list_page(
    request: Request,
    ctx: ApiContext,
    actor: Actor,
    base: str,
    *,
    done: str = "",
    refused: RefundryError | None = None,
) -> Response:
    return render(
        request,
        "account/passkeys.html",
        status=status_for(refused) if refused else 200,
        base=base,
        passkeys=list_passkeys(ctx.engine, actor),
        done=done,
        refused=refused,
    )


def _list(base: str, request: Request, ctx: ApiContext, done: str) -> Response:
    return _list_page(request, ctx, _owner(ctx, request, base), base, done=done[:20])


def _new(base: str, request: Request, form: object, ctx: ApiContext) -> Response:
    actor = _owner(ctx, request, base)
    options = registration_options(ctx.engine, ctx.desk.relying_party, actor=actor, now=ctx.now())
    name = " ".join(_field(form, "name", 100).split())
    return render(request, "account/passkey_new.html", base=base, options=options, name=name)


def _add(base: str, request: Request, form: object, ctx: ApiContext) -> Response:
    actor = _owner(ctx, request, base)
    try:
        register_passkey(
            ctx.engine,
            ctx.desk.relying_party,
            actor=actor,
            credential=_field(form, "credential", CREDENTIAL_MAX),
            name=_field(form, "name", 100),
            now=ctx.now(),
        )
    except RefundryError as error:
        if error.code.startswith("auth."):
            raise
        return _list_page(request, ctx, actor, base, refused=error)
    return RedirectResponse(f"{base}?done=added", status_code=303)


def _remove(base: str, passkey_id: str, request: Request, ctx: ApiContext) -> Response:
    actor = _owner(ctx, request, base)
    try:
        remove_passkey(ctx.engine, actor=actor, passkey_id=passkey_id, now=ctx.now())
    except RefundryError as error:
        return _list_page(request, ctx, actor, base, refused=error)
    return RedirectResponse(f"{base}?done=removed", status_code=303)


@router.get(CUSTOMER_BASE)
def customer_list(request: Request, ctx: ContextDep, done: str = "") -> Response:
    return _list(CUSTOMER_BASE, request, ctx, done)


@router.post(f"{CUSTOMER_BASE}/new")
def customer_new(request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _new(CUSTOMER_BASE, request, form, ctx)


@router.post(CUSTOMER_BASE)
def customer_add(request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _add(CUSTOMER_BASE, request, form, ctx)


@router.post(CUSTOMER_BASE + "/{passkey_id}/remove")
def customer_remove(
    passkey_id: str, request: Request, form: CheckedForm, ctx: ContextDep
) -> Response:
    return _remove(CUSTOMER_BASE, passkey_id, request, ctx)


@router.get(DESK_BASE)
def desk_list(request: Request, ctx: ContextDep, done: str = "") -> Response:
    return _or_signin(lambda: _list(DESK_BASE, request, ctx, done))


@router.post(f"{DESK_BASE}/new")
def desk_new(request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _or_signin(lambda: _new(DESK_BASE, request, form, ctx))


@router.post(DESK_BASE)
def desk_add(request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _or_signin(lambda: _add(DESK_BASE, request, form, ctx))


@router.post(DESK_BASE + "/{passkey_id}/remove")
def desk_remove(passkey_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _or_signin(lambda: _remove(DESK_BASE, passkey_id, request, ctx))


def _signin_page(
    request: Request, ctx: ApiContext, refused: RefundryError | None = None
) -> Response:
    options = assertion_options(
        ctx.engine, ctx.desk.relying_party, purpose="desk.signin", now=ctx.now()
    )
    return render(
        request,
        "desk/passkey_signin.html",
        status=status_for(refused) if refused else 200,
        options=options,
        refused=refused,
    )


@router.post("/desk/signin/passkey")
def desk_signin(request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    """Without an answer: the page that asks the browser for a passkey. With one: the desk's
    session for its owner, or the page again with the refusal (and a fresh challenge)."""
    credential = _field(form, "credential", CREDENTIAL_MAX)
    if not credential:
        return _signin_page(request, ctx)
    try:
        actor = sign_in_with_passkey(
            ctx.engine, ctx.desk.relying_party, assertion=credential, now=ctx.now()
        )
    except RefundryError as error:
        return _signin_page(request, ctx, error)
    response = RedirectResponse(desk_home(actor), status_code=303)
    start_session(ctx, request, response, actor)
    return response
