"""The agent desk: staff sign-in, the work queue and a case with the agents' actions.

``/desk/signin`` takes a staff account's name and password (services/staff/accounts.py:
argon2id, one refusal whatever was wrong, a per-account limit) and opens the same session
cookie as the customer's pages (refundry/web/session.py). ``/desk`` is the agents' queue
(services/cases/queue.py) narrowed by state, reason and merchant, each case with why it waits
and its risk explanation. ``/desk/feedback`` lists the customers' ratings and feedback.
``/desk/cases/{id}`` shows the case, its timeline, the messages the
customer was sent and whether they arrived (an SMS the provider refused, its retries), the plan
(the one that would apply now, or what the applied refund did), the customer's other cases, and one
form per action the case services offer the agent now (``allowed_actions``; a failed tender
gets retry and wallet). Each form posts and redirects; a refusal comes back on the case page
with its message. Anyone who is not at the desk (a customer's session, none) is sent to the
desk's sign-in: whether an actor is at the desk is services/access.py's answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ApiContext, ContextDep
from refundry.api.problems import status_for
from refundry.domain.errors import RefundryError
from refundry.domain.policy import REASONS
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases.feedback import feedback_list
from refundry.services.cases.photos import case_photos
from refundry.services.cases.queue import agent_queue
from refundry.services.cases.timeline import case_timeline
from refundry.services.cases.views import CaseFilter, list_cases, read_case
from refundry.services.orders.views import preview_order_refund, read_order
from refundry.services.outbox.case_messages import case_messages
from refundry.services.refunds.failed_refunds import case_tender_to_wallet, retry_case_tender
from refundry.services.refunds.views import case_refund
from refundry.services.staff.accounts import sign_in
from refundry.web.pages import page_router
from refundry.web.session import CheckedForm, end_session, session_actor, start_session
from refundry.web.templating import render

__all__ = ["router"]

router = page_router()

QUEUE_STATES = ("under_review", "needs_manual_review", "refund_failed")
TEXT_MAX = 2000


class _NotAtDesk(Exception):
    pass


def _desk_actor(ctx: ApiContext, request: Request) -> Actor | None:
    actor = session_actor(ctx, request)
    if actor is None or not access.may(actor, "agent.queue"):
        return None
    return actor


def _to_signin() -> Response:
    return RedirectResponse("/desk/signin", status_code=303)


def _text(value: Any) -> str:
    return value[:TEXT_MAX].strip() if isinstance(value, str) else ""


@router.get("/desk/signin")
def signin_page(request: Request) -> Response:
    return render(request, "desk/signin.html", name="", refused=None)


@router.post("/desk/signin")
def signin(request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    name, password = form.get("name"), form.get("password")
    try:
        actor = sign_in(
            ctx.engine,
            name=name if isinstance(name, str) else "",
            password=password if isinstance(password, str) else "",
            now=ctx.now(),
        )
    except RefundryError as error:
        return render(
            request,
            "desk/signin.html",
            status=status_for(error),
            name=_text(name)[:140],
            refused=error,
        )
    response = RedirectResponse(desk_home(actor), status_code=303)
    start_session(ctx, request, response, actor)
    return response


def desk_home(actor: Actor) -> str:
    """Where a staff sign-in (password or passkey) lands: a merchant's account opens the
    merchant desk (refundry/web/routes/merchant.py), the others the work queue."""
    return "/merchant" if access.may(actor, "merchant.desk") else "/desk"


@router.post("/desk/signout")
def signout(form: CheckedForm) -> Response:
    response = RedirectResponse("/desk/signin", status_code=303)
    end_session(response)
    return response


@router.get("/desk/feedback")
def feedback_page(
    request: Request, ctx: ContextDep, rating: str = "", cursor: str | None = None
) -> Response:
    """The customers' ratings and feedback, newest first (the text escaped like all text)."""
    actor = _desk_actor(ctx, request)
    if actor is None:
        return _to_signin()
    mark = int(rating) if rating in ("1", "2", "3", "4", "5") else None
    found = feedback_list(ctx.engine, actor, rating=mark, cursor=cursor or None)
    more = urlencode({"rating": rating, "cursor": found.next_cursor}) if found.next_cursor else None
    return render(request, "desk/feedback.html", found=found, rating=rating, more=more)


@router.get("/desk")
def queue_page(
    request: Request,
    ctx: ContextDep,
    state: str = "",
    reason: str = "",
    merchant: str = "",
    cursor: str | None = None,
) -> Response:
    actor = _desk_actor(ctx, request)
    if actor is None:
        return _to_signin()
    filters = {"state": state, "reason": reason, "merchant": merchant[:140].strip()}
    queue = agent_queue(
        ctx.engine,
        actor,
        limit=50,
        cursor=cursor or None,
        state=filters["state"] or None,
        reason=filters["reason"] or None,
        merchant=filters["merchant"] or None,
    )
    more = urlencode({**filters, "cursor": queue.next_cursor}) if queue.next_cursor else None
    return render(
        request,
        "desk/queue.html",
        queue=queue,
        filters=filters,
        states=QUEUE_STATES,
        reasons=REASONS,
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
    case = read_case(ctx.engine, case_id, actor)
    order = read_order(ctx.engine, case.order_id, actor)
    refund = case_refund(ctx.engine, case_id, actor)
    plan, no_plan = None, None
    if refund is None and case.state not in ("rejected", "cancelled", "closed"):
        try:
            plan = preview_order_refund(
                ctx.engine,
                actor=actor,
                order_id=case.order_id,
                request={
                    "order_id": case.order_id,
                    "lines": [{"line_id": u.line_id, "quantity": u.quantity} for u in case.lines],
                    "reason": case.reason,
                    "kind": case.kind,
                },
                policy=ctx.desk.policy,
                now=ctx.now(),
            )
        except RefundryError as error:
            no_plan = error
    history = [
        c
        for c in list_cases(
            ctx.engine, actor, where=CaseFilter(customer_id=case.customer_id), limit=20
        ).items
        if c.id != case.id
    ]
    return render(
        request,
        "desk/case.html",
        status=status_for(refused) if refused else 200,
        case=case,
        order=order,
        titles={ln.line_id: ln.title for ln in order.lines},
        methods={t.tender_id: t.method for t in order.tenders},
        refund=refund,
        plan=plan,
        no_plan=no_plan,
        timeline=case_timeline(ctx.engine, case_id, actor),
        messages=case_messages(ctx.engine, case_id, actor),
        photos=case_photos(ctx.engine, case_id, actor),  # desk/_evidence.html
        history=history,
        done=done,
        refused=refused,
    )


@router.get("/desk/cases/{case_id}")
def case_page(case_id: str, request: Request, ctx: ContextDep, done: str = "") -> Response:
    actor = _desk_actor(ctx, request)
    if actor is None:
        return _to_signin()
    return _case_page(request, ctx, actor, case_id, done=done[:20])


def _act(case_id: str, action: str, request: Request, form: Any, ctx: ApiContext) -> Response:
    """Take ``action`` on the case, then back to its page; a refusal is shown there."""
    actor = _desk_actor(ctx, request)
    if actor is None:
        return _to_signin()
    comment = _text(form.get("comment"))
    tender_id = _text(form.get("tender_id"))
    now = ctx.now()
    try:
        if action == "approve":
            case_actions.approve(ctx.desk, case_id, actor=actor, now=now, comment=comment)
        elif action == "reject":
            case_actions.reject(ctx.desk, case_id, actor=actor, now=now, comment=comment)
        elif action == "resolve":
            case_actions.resolve_manual_review(
                ctx.desk,
                case_id,
                actor=actor,
                now=now,
                resolution=_text(form.get("resolution")),
                comment=comment,
            )
        elif action == "retry":
            retry_case_tender(
                ctx.engine, case_id, tender_id=tender_id, actor=actor, now=now, reason=comment
            )
        elif action == "wallet":
            if ctx.gateway is None:
                raise RuntimeError("the desk's wallet action needs the payment gateway")
            case_tender_to_wallet(
                ctx.engine,
                case_id,
                tender_id=tender_id,
                actor=actor,
                now=now,
                reason=comment,
                gateway=ctx.gateway,
            )
    except RefundryError as error:
        if error.code.endswith("not_found") and error.code.startswith("case."):
            raise
        return _case_page(request, ctx, actor, case_id, refused=error)
    return RedirectResponse(f"/desk/cases/{case_id}?done={action}", status_code=303)


@router.post("/desk/cases/{case_id}/approve")
def approve(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _act(case_id, "approve", request, form, ctx)


@router.post("/desk/cases/{case_id}/reject")
def reject(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _act(case_id, "reject", request, form, ctx)


@router.post("/desk/cases/{case_id}/resolve")
def resolve(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _act(case_id, "resolve", request, form, ctx)


@router.post("/desk/cases/{case_id}/retry")
def retry(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _act(case_id, "retry", request, form, ctx)


@router.post("/desk/cases/{case_id}/wallet")
def wallet(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    return _act(case_id, "wallet", request, form, ctx)
