"""The merchant desk: a merchant's returns, received and inspected.

A merchant signs in at the desk's sign-in (``/desk/signin``, a staff account of role merchant
bound to its merchant id: ``refundry user add merchant NAME --merchant ID``) and lands here.
``/merchant`` lists the cases asking for its lines (services/cases/views.py's ``list_cases``,
narrowed by state); ``/merchant/cases/{id}`` shows one of them with its own lines only, the
timeline, and the forms the case services accept from it now (``allowed_actions``): receive the
parcel, and inspect it: pass, partial with the accepted quantity per line, or fail with a
reason, with the restock disposition (resellable or damaged) of every accepted line. Each form
posts and redirects; a refusal comes back on the case page with its message, and nothing
changed. Another merchant's case is not found (404), exactly as one that does not exist;
anyone who is not a merchant is sent to the sign-in. The inspection form takes photos
(multipart): checked and stored, then held by the case in the inspection's own transaction
(services/cases/photos.py); a refused photo refuses the inspection, and nothing changes. The
page shows the customer's photos and the inspection's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ApiContext, ContextDep
from refundry.api.problems import status_for
from refundry.domain.errors import InvalidInput, RefundryError
from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases.photos import case_photos, check_uploads, store_photos
from refundry.services.cases.timeline import case_timeline
from refundry.services.cases.views import CaseFilter, CaseView, list_cases, read_case
from refundry.services.orders.views import read_order
from refundry.web.pages import page_router
from refundry.web.routes.orders import uploads
from refundry.web.session import CheckedForm, session_reaching
from refundry.web.templating import render

__all__ = ["router"]

router = page_router()

# The states a merchant filters its returns by, in the order a return goes through them.
MERCHANT_STATES = (
    "under_review",
    "awaiting_return",
    "return_in_transit",
    "received",
    "refunding",
    "refunded",
    "rejected_after_inspection",
)
TEXT_MAX = 2000


def _merchant(ctx: ApiContext, request: Request) -> Actor | None:
    return session_reaching(ctx, request, "merchant.desk")


def _to_signin() -> Response:
    return RedirectResponse("/desk/signin", status_code=303)


@router.get("/merchant")
def returns_page(
    request: Request, ctx: ContextDep, state: str = "", cursor: str | None = None
) -> Response:
    actor = _merchant(ctx, request)
    if actor is None:
        return _to_signin()
    state = state if state in MERCHANT_STATES else ""
    page = list_cases(
        ctx.engine, actor, where=CaseFilter(state=state or None), cursor=cursor or None, limit=50
    )
    more = urlencode({"state": state, "cursor": page.next_cursor}) if page.next_cursor else None
    return render(
        request,
        "merchant/returns.html",
        page=page,
        state=state,
        states=MERCHANT_STATES,
        more=more,
    )


def _case_page(
    request: Request,
    ctx: ApiContext,
    actor: Actor,
    case_id: str,
    *,
    done: str = "",
    refused: RefundryError | None = None,
) -> Response:
    case = read_case(ctx.engine, case_id, actor)  # case.not_found for another merchant's
    order = read_order(ctx.engine, case.order_id, actor)
    return render(
        request,
        "merchant/case.html",
        status=status_for(refused) if refused else 200,
        case=case,
        titles={ln.line_id: ln.title for ln in order.lines},
        timeline=case_timeline(ctx.engine, case_id, actor),
        photos=case_photos(ctx.engine, case_id, actor),
        dispositions=case_actions.DISPOSITIONS,
        done=done,
        refused=refused,
    )


@router.get("/merchant/cases/{case_id}")
def case_page(case_id: str, request: Request, ctx: ContextDep, done: str = "") -> Response:
    actor = _merchant(ctx, request)
    if actor is None:
        return _to_signin()
    return _case_page(request, ctx, actor, case_id, done=done[:20])


def _quantity(value: Any, line_id: str) -> int:
    text = value.strip() if isinstance(value, str) else ""
    if not text.isdigit() or len(text) > 6:
        raise InvalidInput(
            f"accepted units of {line_id} must be a whole number",
            code="case.inspection_invalid",
            field="accepted",
        )
    return int(text)


def _inspection(form: Any, case: CaseView) -> dict[str, Any]:
    """The inspect call's arguments from the form: the result, the accepted units of a partial
    result and the disposition of every line the result accepts."""
    result = form.get("result")
    result = result if isinstance(result, str) else ""
    accepted: dict[str, int] | None = None
    kept = [u.line_id for u in case.lines] if result == "pass" else []
    if result == "partial":
        accepted = {
            u.line_id: _quantity(form.get(f"accepted.{u.line_id}"), u.line_id) for u in case.lines
        }
        kept = [k for k, q in accepted.items() if q]
    disposition = {}
    for line_id in kept:
        chosen = form.get(f"disposition.{line_id}")
        disposition[line_id] = chosen if isinstance(chosen, str) else ""
    reason = form.get("reason")
    return {
        "result": result,
        "accepted": accepted,
        "reason": reason[:TEXT_MAX].strip() if isinstance(reason, str) else "",
        "disposition": disposition,
    }


def _act(case_id: str, action: str, request: Request, form: Any, ctx: ApiContext) -> Response:
    """Take ``action`` on the case, then back to its page; a refusal is shown there."""
    actor = _merchant(ctx, request)
    if actor is None:
        return _to_signin()
    case = read_case(ctx.engine, case_id, actor)  # case.not_found for another merchant's
    now = ctx.now()
    try:
        if action == "receive":
            case_actions.receive(ctx.desk, case_id, actor=actor, now=now)
        else:
            checked = check_uploads(uploads(form), ctx.desk.photo_limits)
            photos = store_photos(ctx.runtime.photo_storage, checked)  # rows: with the result
            inspection = _inspection(form, case)
            case_actions.inspect(
                ctx.desk, case_id, actor=actor, now=now, photos=photos, **inspection
            )
    except RefundryError as error:
        if error.code == "case.not_found":
            raise
        return _case_page(request, ctx, actor, case_id, refused=error)
    return RedirectResponse(f"/merchant/cases/{case_id}?done={action}", status_code=303)


@router.post("/merchant/cases/{case_id}/receive")
def receive(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _act(case_id, "receive", request, form, ctx)


@router.post("/merchant/cases/{case_id}/inspect")
def inspect(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _act(case_id, "inspect", request, form, ctx)
