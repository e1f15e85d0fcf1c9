"""The agents' acts on a case, as form posts from the desk's pages: one route each, then back.

``POST /desk/cases/{id}/<act>`` calls the one service the API's route for the same act calls
(``ACTS``: the table of which), so the page and the API cannot disagree on what is allowed,
audited or refused. Every post carries the CSRF token (the page router's guard refuses one
without, before anything is read). After the act the browser is sent back — to the case page
with ``done``, or to the queue it came from (a ``back`` field naming ``/desk?…``: claim and
assign from the queue) — and a refusal is the case page again with its message, its code and
the status the API would answer, nothing changed.

Free text is handed to the services as typed: they refuse what is blank or too long (a note
over 2000 characters is ``case.note_invalid``, never cut short). A debt's amount is typed in
the currency's major units (``12.50``) and read into minor units by refundry/web/formats.py;
what is not such an amount is ``case.debt_amount_invalid``, like an amount out of range.
Suspending or lifting refund rights acts on the case's customer (the case read as the agent
sees it names them: no customer id comes from the form).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from refundry.api.deps import ApiContext, ContextDep
from refundry.domain.errors import InvalidInput, RefundryError
from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases import debts, handling
from refundry.services.cases.views import read_case
from refundry.services.customers import suspensions
from refundry.services.refunds.failed_refunds import case_tender_to_wallet, retry_case_tender
from refundry.web.formats import minor_units
from refundry.web.pages import page_router
from refundry.web.routes.desk import case_page_answer, desk_actor, to_signin
from refundry.web.session import CheckedForm

__all__ = ["ACTS", "router"]

router = page_router()

Act = Callable[[ApiContext, str, Actor, datetime, FormData], None]


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _approve(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    comment = _field(form, "comment").strip()
    case_actions.approve(ctx.desk, case_id, actor=actor, now=now, comment=comment)


def _reject(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    comment = _field(form, "comment").strip()
    case_actions.reject(ctx.desk, case_id, actor=actor, now=now, comment=comment)


def _resolve(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    case_actions.resolve_manual_review(
        ctx.desk,
        case_id,
        actor=actor,
        now=now,
        resolution=_field(form, "resolution"),
        comment=_field(form, "comment").strip(),
    )


def _retry(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    retry_case_tender(
        ctx.engine,
        case_id,
        tender_id=_field(form, "tender_id"),
        actor=actor,
        now=now,
        reason=_field(form, "comment").strip(),
    )


def _wallet(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    if ctx.gateway is None:
        raise RuntimeError("the desk's wallet action needs the payment gateway")
    case_tender_to_wallet(
        ctx.engine,
        case_id,
        tender_id=_field(form, "tender_id"),
        actor=actor,
        now=now,
        reason=_field(form, "comment").strip(),
        gateway=ctx.gateway,
    )


def _escalate(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    comment = _field(form, "comment")
    handling.escalate(ctx.desk, case_id, actor=actor, now=now, comment=comment)


def _note(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    handling.add_note(ctx.desk, case_id, actor=actor, now=now, text=_field(form, "text"))


def _claim(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    handling.claim(ctx.desk, case_id, actor=actor, now=now)


def _assign(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    agent_id = _field(form, "agent_id")
    handling.assign(ctx.desk, case_id, actor=actor, now=now, agent_id=agent_id)


def _amount(ctx: ApiContext, case_id: str, actor: Actor, form: FormData) -> tuple[int, str]:
    """The typed amount in minor units of the case's currency, and that currency."""
    currency = read_case(ctx.engine, case_id, actor).currency
    amount = minor_units(_field(form, "amount"), currency)
    if amount is None:
        raise InvalidInput(
            f"the amount is a number of {currency} such as 12.50",
            code="case.debt_amount_invalid",
            field="amount",
        )
    return amount, currency


def _recover(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    amount, currency = _amount(ctx, case_id, actor, form)
    debts.recover_debt(
        ctx.desk,
        case_id,
        actor=actor,
        now=now,
        amount=amount,
        currency=currency,
        method=_field(form, "method"),
        reference=_field(form, "reference"),
        comment=_field(form, "comment"),
    )


def _write_off(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    amount, currency = _amount(ctx, case_id, actor, form)
    debts.write_off_debt(
        ctx.desk,
        case_id,
        actor=actor,
        now=now,
        amount=amount,
        currency=currency,
        comment=_field(form, "comment"),
    )


def _suspend(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    customer_id = read_case(ctx.engine, case_id, actor).customer_id
    suspensions.suspend(
        ctx.engine, actor=actor, customer_id=customer_id, reason=_field(form, "reason"), now=now
    )


def _lift(ctx: ApiContext, case_id: str, actor: Actor, now: datetime, form: FormData) -> None:
    customer_id = read_case(ctx.engine, case_id, actor).customer_id
    suspensions.lift(
        ctx.engine, actor=actor, customer_id=customer_id, reason=_field(form, "reason"), now=now
    )


# The act (the last part of the form's path) -> what it calls: the same service as the API's
# route named in the comment.
ACTS: dict[str, Act] = {
    "approve": _approve,  # POST /v1/cases/{id}/approve
    "reject": _reject,  # POST /v1/cases/{id}/reject
    "resolve": _resolve,  # POST /v1/cases/{id}/resolve
    "retry": _retry,  # POST /v1/cases/{id}/retry-refund
    "wallet": _wallet,  # POST /v1/cases/{id}/refund-to-wallet
    "escalate": _escalate,  # POST /v1/cases/{id}/escalate
    "note": _note,  # POST /v1/cases/{id}/note
    "claim": _claim,  # POST /v1/cases/{id}/claim
    "assign": _assign,  # POST /v1/cases/{id}/assign
    "recover-debt": _recover,  # POST /v1/cases/{id}/recover-debt
    "write-off-debt": _write_off,  # POST /v1/cases/{id}/write-off-debt
    "suspend": _suspend,  # POST /v1/customers/{customer_id}/suspension
    "lift": _lift,  # DELETE /v1/customers/{customer_id}/suspension
}


def _back(form: FormData, case_id: str, name: str) -> str:
    """Where the browser goes after the act: the queue it came from, or the case."""
    back = _field(form, "back")
    if back == "/desk" or back.startswith("/desk?"):
        return f"{back}{'&' if '?' in back else '?'}done={name}"
    return f"/desk/cases/{case_id}?done={name}"


def _route(name: str, act: Act) -> None:
    def post(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
        actor = desk_actor(ctx, request)
        if actor is None:
            return to_signin()
        try:
            act(ctx, case_id, actor, ctx.now(), form)
        except RefundryError as error:
            if error.code == "case.not_found":
                raise  # the error page, as for a case the agent cannot see
            return case_page_answer(request, ctx, actor, case_id, refused=error)
        return RedirectResponse(_back(form, case_id, name), status_code=303)

    post.__name__ = f"desk_{name.replace('-', '_')}"
    router.add_api_route(f"/desk/cases/{{case_id}}/{name}", post, methods=["POST"])


for _name, _act in ACTS.items():
    _route(_name, _act)
