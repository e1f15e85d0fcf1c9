"""The agent desk: staff sign-in, the work queue and a case with the agents' actions.

``/desk/signin`` takes a staff account's name and password (services/staff/accounts.py:
argon2id, one refusal whatever was wrong, a per-account limit) and opens the same session
cookie as the customer's pages (refundry/web/session.py). ``/desk`` is the agents' queue
(services/cases/queue.py) narrowed by state, reason, merchant, how long a case has waited, its
risk decision and who holds it (``held=mine``: the signed-in agent), each case with why it
waits, its risk explanation and the forms to claim it or assign it to an agent.
``/desk/feedback`` lists the customers' ratings and feedback. ``/desk/cases/{id}`` shows the
case, its timeline with the desk's own entries (internal notes, assignments, debt records),
the messages the customer was sent and whether they arrived (an SMS the provider refused, its
retries), the plan (the one that would apply now, or what the applied refund did), the
customer's history (services/customers/history.py), and one form per action the services
offer the agent now (``allowed_actions``; the forms post to refundry/web/routes/desk_acts.py).
Anyone who is not at the desk (a customer's session, none) is sent to the desk's sign-in:
whether an actor is at the desk is services/access.py's answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ApiContext, ContextDep
from refundry.api.problems import status_for
from refundry.domain.errors import RefundryError
from refundry.domain.policy import REASONS
from refundry.domain.process_policy import RISK_DECISIONS
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases.debts import RECOVERY_METHODS
from refundry.services.cases.feedback import feedback_list
from refundry.services.cases.photos import case_photos
from refundry.services.cases.queue import FLAGGED, agent_queue
from refundry.services.cases.views import read_case_detail
from refundry.services.customers.history import customer_history
from refundry.services.orders.views import preview_order_refund, read_order
from refundry.services.outbox.case_messages import case_messages
from refundry.services.refunds.views import case_refund
from refundry.services.staff.accounts import agent_names, sign_in
from refundry.web.formats import typed_amount
from refundry.web.pages import page_router
from refundry.web.session import CheckedForm, end_session, session_actor, start_session
from refundry.web.templating import render

__all__ = ["case_page_answer", "desk_actor", "router", "to_signin"]

router = page_router()

QUEUE_STATES = ("under_review", "needs_manual_review", "refund_failed")
# The queue's age filter: cases that have waited in their state for more than this.
AGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "3d": timedelta(days=3)}
RISKS = (FLAGGED, *RISK_DECISIONS)
HELD = ("mine", "nobody")
TEXT_MAX = 2000


def desk_actor(ctx: ApiContext, request: Request) -> Actor | None:
    actor = session_actor(ctx, request)
    if actor is None or not access.may(actor, "agent.queue"):
        return None
    return actor


def to_signin() -> Response:
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
    actor = desk_actor(ctx, request)
    if actor is None:
        return to_signin()
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
    age: str = "",
    risk: str = "",
    held: str = "",
    cursor: str | None = None,
    done: str = "",
) -> Response:
    actor = desk_actor(ctx, request)
    if actor is None:
        return to_signin()
    filters = {
        "state": state,
        "reason": reason,
        "merchant": merchant[:140].strip(),
        "age": age if age in AGES else "",
        "risk": risk if risk in RISKS else "",
        "held": held if held in HELD else "",
    }
    queue = agent_queue(
        ctx.engine,
        actor,
        limit=50,
        cursor=cursor or None,
        state=filters["state"] or None,
        reason=filters["reason"] or None,
        merchant=filters["merchant"] or None,
        waiting_since=ctx.now() - AGES[filters["age"]] if filters["age"] else None,
        risk=filters["risk"] or None,
        assignee=actor.tag if filters["held"] == "mine" else None,
        unassigned=filters["held"] == "nobody",
    )
    here = urlencode({k: v for k, v in filters.items() if v})
    more = urlencode({**filters, "cursor": queue.next_cursor}) if queue.next_cursor else None
    return render(
        request,
        "desk/queue.html",
        queue=queue,
        filters=filters,
        states=QUEUE_STATES,
        reasons=REASONS,
        ages=tuple(AGES),
        risks=RISKS,
        held_choices=HELD,
        agents=agent_names(ctx.engine, actor),
        back=f"/desk?{here}" if here else "/desk",
        more=more,
        done=done[:20],
    )


def case_page_answer(
    request: Request,
    ctx: ApiContext,
    actor: Actor,
    case_id: str,
    *,
    done: str = "",
    refused: RefundryError | None = None,
) -> Response:
    case = read_case_detail(ctx.desk, case_id, actor)
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
        timeline=case.timeline,
        messages=case_messages(ctx.engine, case_id, actor),
        history=customer_history(ctx.engine, actor, case.customer_id, now=ctx.now()),
        agents=agent_names(ctx.engine, actor),
        recovery_methods=RECOVERY_METHODS,
        debt_typed=typed_amount(case.debt, case.currency),
        photos=case_photos(ctx.engine, case_id, actor),  # desk/_evidence.html
        done=done,
        refused=refused,
    )


@router.get("/desk/cases/{case_id}")
def case_page(case_id: str, request: Request, ctx: ContextDep, done: str = "") -> Response:
    actor = desk_actor(ctx, request)
    if actor is None:
        return to_signin()
    return case_page_answer(request, ctx, actor, case_id, done=done[:20])
