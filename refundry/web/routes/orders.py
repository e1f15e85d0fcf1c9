"""The customer's pages: the order list, an order and a refund request (the case page:
routes/cases.py).

A request is GOV.UK's pattern (docs/pages.md): the form (units per line, reason, refund only
or return, a description, photos) -> "check your answers", the plan the services would apply now
(``preview_order_refund``) -> submit (``submit_case``); when the case service answers
``identity.code_required``, a code is texted (``request_code``) and the same answers come
back with a code field, then -> the case page. A customer with passkeys is offered the passkey
instead (``orders/passkey.html``: a challenge bound to these answers, static/passkey.js), with
a button to have the code texted after all. Every step is a plain form post answered by a
page or a redirect, so it works without JavaScript. The form is multipart: its photos are
checked and stored when it posts to "check your answers" (``stage_photos``), and each later
step carries their signed references in hidden fields (``Answers.photos``), so the case holds
them from its opening. What the pages show and allow is the
services' (read models, ``access``): another customer's order or case is 404 here as there.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData, UploadFile

from refundry.api.deps import ApiContext, ContextDep
from refundry.domain.errors import RefundryError
from refundry.domain.photos import check_count
from refundry.domain.policy import REASONS
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases.opening import CaseRate
from refundry.services.cases.photos import stage_photos, staged_photo
from refundry.services.cases.submission import submit_case
from refundry.services.customers.identity import request_code
from refundry.services.customers.version import data_version
from refundry.services.orders.assets import order_assets
from refundry.services.orders.lists import customer_orders
from refundry.services.orders.views import OrderView, preview_order_refund, read_order
from refundry.services.passkeys import assertion_options, list_passkeys, submission_binding
from refundry.web.kept_pages import draw_and_keep
from refundry.web.pages import NotSignedIn, page_router
from refundry.web.session import CheckedForm, session_actor
from refundry.web.templating import render

__all__ = ["Answers", "router"]

router = page_router()

KINDS = ("refund_only", "return_and_refund")
DESCRIPTION_MAX = 2000
PHOTO_REF_MAX = 200  # a staged photo's reference is about 120 characters
PHOTOS_MAX = 20  # references read from a form at most (the settings' per-case limit is lower)


def signed_in(ctx: ApiContext, request: Request) -> Actor:
    actor = session_actor(ctx, request)
    if actor is None:
        raise NotSignedIn
    return actor


@dataclass
class Answers:
    """The request form's answers, as the form sent them (kept to show them again)."""

    units: dict[str, str] = field(default_factory=dict)  # line id -> units asked, as typed
    reason: str = ""
    kind: str = ""
    description: str = ""
    photos: list[str] = field(default_factory=list)  # staged references (services/cases/photos)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (field id, message)

    @classmethod
    def read(cls, source: Any, order: OrderView) -> Answers:
        """From a form or a query string: ``units.<line id>``, reason, kind, description."""
        answers = cls(
            units={
                ln.line_id: str(source.get(f"units.{ln.line_id}", "0")).strip() or "0"
                for ln in order.lines
            },
            reason=str(source.get("reason", "")),
            kind=str(source.get("kind", "")),
            description=str(source.get("description", ""))[: DESCRIPTION_MAX + 1],
            photos=[str(r)[:PHOTO_REF_MAX] for r in source.getlist("photo")][:PHOTOS_MAX],
        )
        return answers

    def lines(self, order: OrderView) -> list[dict[str, Any]]:
        """The request's lines; a form error for each count that is not a whole number in
        range, and one when no unit is chosen."""
        chosen = []
        for i, ln in enumerate(order.lines):
            text = self.units.get(ln.line_id, "0")
            left = ln.quantity - ln.refunded_qty
            if not text.isdigit() or int(text) > left:
                self.errors.append((f"units-{i}", f"units-range|{ln.title}|{left}"))
            elif int(text) > 0:
                chosen.append({"line_id": ln.line_id, "quantity": int(text)})
        if not chosen and not self.errors:
            self.errors.append(("units-0", "units-none"))
        if self.reason not in REASONS:
            self.errors.append(("reason", "reason"))
        if self.kind not in KINDS:
            self.errors.append(("kind", "kind"))
        if len(self.description) > DESCRIPTION_MAX:
            self.errors.append(("description", "description"))
        return chosen

    def request(self, order: OrderView) -> dict[str, Any] | None:
        """The request document, or None when the form has errors."""
        lines = self.lines(order)
        if self.errors:
            return None
        return {"order_id": order.id, "lines": lines, "reason": self.reason, "kind": self.kind}

    def query(self) -> str:
        """The answers as a query string: the "Change" link back to the form."""
        values = {f"units.{k}": v for k, v in self.units.items()}
        values.update(reason=self.reason, kind=self.kind, description=self.description)
        return urlencode([*values.items(), *(("photo", ref) for ref in self.photos)])


@router.get("/orders")
def orders_page(request: Request, ctx: ContextDep) -> Response:
    actor = signed_in(ctx, request)
    return render(request, "orders/list.html", orders=customer_orders(ctx.engine, actor))


@router.get("/orders/{order_id}")
def order_page(order_id: str, request: Request, ctx: ContextDep) -> Response:
    actor = signed_in(ctx, request)
    if actor.role != "customer":
        order = read_order(ctx.engine, order_id, actor)
        assets = order_assets(ctx.engine, order_id, actor)
        return render(request, "orders/order.html", order=order, assets=assets)
    version = data_version(ctx.engine, actor.id)  # before the reads: see draw_and_keep
    order = read_order(ctx.engine, order_id, actor)
    assets = order_assets(ctx.engine, order_id, actor)
    return draw_and_keep(
        request, "orders/order.html", actor=actor, version=version, order=order, assets=assets
    )


@router.get("/orders/{order_id}/request")
def request_form(order_id: str, request: Request, ctx: ContextDep, line: str = "") -> Response:
    actor = signed_in(ctx, request)
    access.require(actor, "case.open")
    order = read_order(ctx.engine, order_id, actor)
    answers = Answers.read(request.query_params, order)
    if line and line in answers.units and answers.units[line] == "0":
        answers.units[line] = "1"  # one click from a line: that line's unit is chosen
    return render(request, "orders/request.html", order=order, answers=answers, reasons=REASONS)


def _form_again(request: Request, order: OrderView, answers: Answers) -> Response:
    return render(
        request, "orders/request.html", status=422, order=order, answers=answers, reasons=REASONS
    )


def _field_of(error: RefundryError) -> str:
    """The form field a service's refusal names (its ``field``), for the error summary."""
    where = error.field or ""
    if where.startswith("request.reason"):
        return "reason"
    if where.startswith("request.kind") or where.startswith("request.return_method"):
        return "kind"
    return "units-0"


@router.post("/orders/{order_id}/request/preview")
def preview_page(order_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    actor = signed_in(ctx, request)
    order = read_order(ctx.engine, order_id, actor)
    answers = Answers.read(form, order)
    doc = answers.request(order)
    try:
        answers.photos += _staged(ctx, actor, form, held=len(answers.photos))
    except RefundryError as error:
        if not error.code.startswith("photo."):
            raise
        answers.errors.append(("photos", "photo|" + error.code))
    if doc is None or answers.errors:
        return _form_again(request, order, answers)
    try:
        plan = preview_order_refund(
            ctx.engine,
            actor=actor,
            order_id=order_id,
            request=doc,
            policy=ctx.desk.policy,
            now=ctx.now(),
        )
    except RefundryError as error:
        if error.code.endswith("not_found") or error.code.startswith("auth."):
            raise
        answers.errors.append((_field_of(error), "service|" + error.message))
        return _form_again(request, order, answers)
    return render(request, "orders/preview.html", order=order, answers=answers, plan=plan)


def uploads(form: FormData, name: str = "photos") -> list[bytes]:
    """The files a form sent in its file input ``name`` (an empty input sends one nameless,
    empty part: not a photo)."""
    sent = []
    for part in form.getlist(name):
        if isinstance(part, UploadFile) and (part.filename or part.size):
            part.file.seek(0)
            sent.append(part.file.read())
    return sent


def _staged(ctx: ApiContext, actor: Actor, form: FormData, *, held: int) -> list[str]:
    """The photos the request form sent, checked and stored: their staged references (the
    form carries them to the submission)."""
    sent = uploads(form)
    if not sent:
        return []
    check_count(held, len(sent), ctx.desk.photo_limits)
    return stage_photos(ctx.desk, ctx.runtime.photo_storage, actor=actor, uploads=sent)


def _case_rate(ctx: ApiContext) -> CaseRate:
    return CaseRate(
        limit=ctx.settings.case_rate_limit,
        window=timedelta(seconds=ctx.settings.case_rate_window_seconds),
    )


def _otp(form: FormData) -> tuple[str, str] | None:
    code_id, code = form.get("code_id"), form.get("code")
    if isinstance(code_id, str) and code_id and isinstance(code, str):
        return (code_id, code.strip())
    return None


@router.post("/orders/{order_id}/request/submit")
def submit_page(order_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    actor = signed_in(ctx, request)
    order = read_order(ctx.engine, order_id, actor)
    answers = Answers.read(form, order)
    doc = answers.request(order)
    if doc is None:
        return _form_again(request, order, answers)
    try:
        photos = [staged_photo(ctx.desk.identity_secret, actor, r) for r in answers.photos]
    except RefundryError as error:
        answers.photos = []
        answers.errors.append(("photos", "photo|" + error.code))
        return _form_again(request, order, answers)
    otp = _otp(form)
    credential = form.get("credential")
    passkey = credential[:PASSKEY_MAX] if isinstance(credential, str) and credential else None
    try:
        opened = submit_case(
            ctx.desk,
            actor=actor,
            request=doc,
            now=ctx.now(),
            rate=_case_rate(ctx),
            description=answers.description,
            otp=otp,
            passkey=passkey,
            photos=photos,
        )
    except RefundryError as error:
        identity = error.code.startswith("identity.")
        texted = form.get("method") == "sms" or otp is not None
        asked = error.code == "identity.code_required" or bool(passkey and identity)
        # without a passkey (left), the code is texted, and a passkey's refusal shown with it
        if not texted and asked and list_passkeys(ctx.engine, actor):
            refused = error if passkey is not None else None
            return _passkey_step(request, ctx, actor, order, answers, doc, refused)
        if error.code == "identity.code_required" or ((otp or passkey) and identity):
            return _code_step(request, ctx, actor, order, answers, otp, error)
        if error.code.endswith("not_found") or error.code.startswith("auth."):
            raise
        answers.errors.append((_field_of(error), "service|" + error.message))
        return _form_again(request, order, answers)
    return RedirectResponse(f"/cases/{opened.case_id}?opened=1", status_code=303)


PASSKEY_MAX = 64 * 1024


def _passkey_step(
    request: Request,
    ctx: ApiContext,
    actor: Actor,
    order: OrderView,
    answers: Answers,
    doc: dict[str, Any],
    refused: RefundryError | None,
) -> Response:
    """The passkey step: a challenge bound to these very answers (a changed request needs a
    new one), and the way back to a texted code."""
    options = assertion_options(
        ctx.engine,
        ctx.desk.relying_party,
        purpose="case.submit",
        actor=actor,
        bound_to=submission_binding(doc),
        now=ctx.now(),
    )
    return render(
        request,
        "orders/passkey.html",
        status=422 if refused else 200,
        order=order,
        answers=answers,
        options=options,
        refused=refused,
    )


def _code_step(
    request: Request,
    ctx: ApiContext,
    actor: Actor,
    order: OrderView,
    answers: Answers,
    otp: tuple[str, str] | None,
    error: RefundryError,
) -> Response:
    """The one-time code step: a code is texted when none was given (or the last one is
    spent), and the same answers come back with a field for it."""
    code_id = otp[0] if otp else None
    refused = None
    if otp is not None or error.code.startswith("identity.passkey"):
        refused = error  # a wrong or expired code: say so, and send a new one when it is spent
    if code_id is None or error.code in ("identity.code_expired", "identity.code_used"):
        access.require(actor, "identity.request_code")
        code_id = request_code(
            ctx.engine,
            customer_id=actor.id,
            purpose="case.submit",
            now=ctx.now(),
            policy=ctx.desk.process.identity,
            sms=ctx.sms,
            secret=ctx.desk.identity_secret,
            rng=secrets,
        )
    return render(
        request,
        "orders/code.html",
        status=422 if refused else 200,
        order=order,
        answers=answers,
        code_id=code_id,
        refused=refused,
    )
