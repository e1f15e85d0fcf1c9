"""The customer's inbox: the messages refundry sent in the app, newest first.

``/inbox`` lists them (services/customers/views.py, ``inbox``: each rendered in the language
it was sent in, with the count of unread ones) 20 a page with an "Older messages" link;
**Mark as read** posts (with the CSRF token) to ``/inbox/{id}/read`` and comes back. Another
customer's message is 404, as over the API (``inbox.message_not_found``).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ContextDep
from refundry.services.customers.views import inbox, read_message
from refundry.web.pages import page_router
from refundry.web.routes.orders import signed_in
from refundry.web.session import CheckedForm
from refundry.web.templating import render

__all__ = ["router"]

router = page_router()


@router.get("/inbox")
def inbox_page(request: Request, ctx: ContextDep, cursor: str | None = None) -> Response:
    actor = signed_in(ctx, request)
    found = inbox(ctx.engine, actor, limit=20, cursor=cursor or None)
    more = urlencode({"cursor": found.next_cursor}) if found.next_cursor else None
    return render(request, "orders/inbox.html", found=found, more=more)


@router.post("/inbox/{message_id}/read")
def mark_read(message_id: int, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    actor = signed_in(ctx, request)
    read_message(ctx.engine, actor, message_id=message_id, now=ctx.now())
    return RedirectResponse(f"/inbox#message-{message_id}", status_code=303)
