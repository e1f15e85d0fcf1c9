"""The customer's case page, kept live, and its rating form.

``/cases/{id}`` shows the case: its state, what comes back, the next deadline with a
countdown, the return label or pickup with its tracking, the timeline, and once the case is
completed the rating and feedback form; while the return is awaited, the form where the
customer enters the parcel's tracking number (the service of POST /v1/cases/{id}/ship). Its
changing part is one fragment
(``orders/case_live.html``) that ``/cases/{id}/events`` sends again, as a server-sent event,
whenever the case moves; static/live.js swaps it in and ticks the countdown. Without
JavaScript the page is the same and a reload shows the news.

The stream is cheap for the server (docs/pages.md, "The live case page"): an async generator
that reads the case's version (``timeline.case_version``, two small reads, in the thread
pool so the event loop is never blocked) every ``POLL_SECONDS``, renders the fragment only
when the version changed, and ends after ``STREAM_SECONDS`` (the browser reconnects after
``RETRY_MS`` with the last version it saw, and the session and access are checked again) or
as soon as the case is final. The stream answers what the page answers: another customer's
case is 404 before anything is streamed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import structlog
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, StreamingResponse

from refundry.api.deps import ApiContext, ContextDep
from refundry.api.problems import status_for
from refundry.domain.errors import RefundryError
from refundry.services.access import Actor
from refundry.services.cases.actions import rate, ship
from refundry.services.cases.photos import case_photos
from refundry.services.cases.timeline import CaseVersion, case_version
from refundry.services.cases.views import read_case_detail
from refundry.services.orders.views import read_order
from refundry.services.refunds.views import case_refund
from refundry.web.pages import page_router
from refundry.web.routes.orders import signed_in
from refundry.web.session import CheckedForm
from refundry.web.templating import SECURITY_HEADERS, render, render_text

__all__ = ["POLL_SECONDS", "STREAM_SECONDS", "router"]

log = structlog.get_logger("refundry.web")
router = page_router()

POLL_SECONDS = 1.0  # how often an open stream reads the case's version
STREAM_SECONDS = 300.0  # a stream's longest life; the browser then reconnects
KEEPALIVE_SECONDS = 15.0  # a comment line, so proxies do not close a quiet stream
RETRY_MS = 3000  # what the browser waits before reconnecting
FEEDBACK_MAX = 2000
MARKS = ("5", "4", "3", "2", "1")


def _pickup(label: dict[str, Any] | None) -> tuple[datetime, datetime] | None:
    """A pickup's slot, as times (the booking stores them as ISO text)."""
    if not label or label.get("kind") != "pickup":
        return None
    try:
        return datetime.fromisoformat(label["slot_start"]), datetime.fromisoformat(
            label["slot_end"]
        )
    except (KeyError, TypeError, ValueError):
        return None


def _live(ctx: ApiContext, case_id: str, actor: Actor, version: CaseVersion) -> dict[str, Any]:
    """What the live fragment shows. ``version`` was read first: a move after it makes the
    next poll send the fragment again, never miss it."""
    case = read_case_detail(ctx.desk, case_id, actor)
    order = read_order(ctx.engine, case.order_id, actor)
    now = ctx.now()
    upcoming = sorted(case.deadlines, key=lambda d: d.at)
    deadline = upcoming[0] if upcoming else None
    label = case.shipment.label if case.shipment else None
    return {
        "case": case,
        "refund": case_refund(ctx.engine, case_id, actor),
        "titles": {ln.line_id: ln.title for ln in order.lines},
        "deadline": deadline,
        "left": max(0, int((deadline.at - now).total_seconds())) if deadline else 0,
        "label": label or {},
        "pickup": _pickup(label),
        "version": version,
        "rating": {"mark": "", "feedback": "", "error": None, "refused": None},
        "shipping": {"tracking_number": "", "refused": None},
    }


def _case_page(
    request: Request,
    ctx: ApiContext,
    case_id: str,
    actor: Actor,
    *,
    status: int = 200,
    **shown: Any,
) -> Response:
    values = _live(ctx, case_id, actor, case_version(ctx.engine, case_id, actor))
    values["rating"] |= shown.pop("rating", {})
    values["shipping"] |= shown.pop("shipping", {})
    shown.setdefault("opened", False)
    shown.setdefault("shipped", False)
    shown.setdefault("rated", False)
    shown.setdefault("photos_added", False)
    shown.setdefault("photo_error", None)
    photos = case_photos(ctx.engine, case_id, actor)
    return render(request, "orders/case.html", status=status, photos=photos, **values, **shown)


def case_page_refused(
    request: Request, ctx: ApiContext, case_id: str, actor: Actor, error: RefundryError
) -> Response:
    """The case page with a refusal of the photos form (routes/photos.py)."""
    return _case_page(
        request, ctx, case_id, actor, status=status_for(error), photo_error=error.code
    )


@router.get("/cases/{case_id}")
def case_page(
    case_id: str,
    request: Request,
    ctx: ContextDep,
    opened: int = 0,
    rated: int = 0,
    photos: int = 0,
    shipped: int = 0,
) -> Response:
    actor = signed_in(ctx, request)
    return _case_page(
        request,
        ctx,
        case_id,
        actor,
        opened=bool(opened),
        rated=bool(rated),
        photos_added=bool(photos),
        shipped=bool(shipped),
    )


def _event(name: str, data: str, event_id: str | None = None) -> str:
    """One server-sent event; each line of ``data`` on its own ``data:`` line."""
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


async def _stream(
    request: Request, ctx: ApiContext, case_id: str, actor: Actor, version: CaseVersion, seen: str
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    started = quiet = loop.time()
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        if version.tag != seen:
            try:
                values = await run_in_threadpool(_live, ctx, case_id, actor, version)
                html = await run_in_threadpool(
                    render_text, request, "orders/case_live.html", **values
                )
            except Exception:  # a fragment that cannot be drawn: say so, do not go silent
                log.exception("case_live.render_failed", case_id=case_id)
                yield _event("end", "error")  # the script offers a reload
                return
            yield _event("case", html, version.tag)
            seen, quiet = version.tag, loop.time()
        if version.final:
            yield _event("end", "final")  # the script closes the stream: nothing will move
            return
        if loop.time() - started >= STREAM_SECONDS or await request.is_disconnected():
            return
        if loop.time() - quiet >= KEEPALIVE_SECONDS:
            yield ": still here\n\n"
            quiet = loop.time()
        await asyncio.sleep(POLL_SECONDS)
        try:
            version = await run_in_threadpool(case_version, ctx.engine, case_id, actor)
        except RefundryError:
            yield _event("end", "gone")
            return


@router.get("/cases/{case_id}/events")
async def case_events(case_id: str, request: Request, ctx: ContextDep, since: str = "") -> Response:
    """The live fragment as server-sent events; ``since`` (or the browser's Last-Event-ID on
    a reconnection) is the version the page shows, so nothing is sent until it changes."""
    actor = await run_in_threadpool(signed_in, ctx, request)
    version = await run_in_threadpool(case_version, ctx.engine, case_id, actor)  # 404: not yours
    seen = request.headers.get("last-event-id") or since
    headers = SECURITY_HEADERS | {"X-Accel-Buffering": "no"}  # nginx: do not buffer a stream
    return StreamingResponse(
        _stream(request, ctx, case_id, actor, version, seen[:64]),
        media_type="text/event-stream",
        headers=headers,
    )


@router.post("/cases/{case_id}/rating")
def rate_case(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    """The rating form: a mark (1 to 5) and optional feedback; posts and redirects. A
    refusal (a case rated already, one not completed) is shown on the case page with the
    service's message and the status the API gives it; nothing changes."""
    actor = signed_in(ctx, request)
    mark, text = form.get("rating"), form.get("feedback")
    mark = mark if isinstance(mark, str) else ""
    feedback = text.strip() if isinstance(text, str) else ""
    shown = {"mark": mark, "feedback": feedback[: FEEDBACK_MAX + 1]}
    if mark not in MARKS:
        shown["error"] = "rating"
    elif len(feedback) > FEEDBACK_MAX:
        shown["error"] = "feedback"
    if "error" in shown:
        return _case_page(request, ctx, case_id, actor, status=422, rating=shown)
    try:
        rate(ctx.desk, case_id, actor=actor, now=ctx.now(), rating=int(mark), feedback=feedback)
    except RefundryError as error:
        if error.code.endswith("not_found") or error.code.startswith("auth."):
            raise
        refused = {**shown, "refused": error}
        return _case_page(request, ctx, case_id, actor, status=status_for(error), rating=refused)
    return RedirectResponse(f"/cases/{case_id}?rated=1", status_code=303)


@router.post("/cases/{case_id}/ship")
def ship_case(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    """The customer's return is on its way: the tracking number, by the service POST
    /v1/cases/{id}/ship calls; posts and redirects. A refusal (no tracking number, one too
    long, a case not awaiting its return) is shown on the case page with the service's
    message and the status the API gives it; nothing changes."""
    actor = signed_in(ctx, request)
    given = form.get("tracking_number")
    tracking = given.strip() if isinstance(given, str) else ""
    try:
        ship(ctx.desk, case_id, actor=actor, now=ctx.now(), tracking_number=tracking)
    except RefundryError as error:
        if error.code.endswith("not_found") or error.code.startswith("auth."):
            raise
        shown = {"tracking_number": tracking[:100], "refused": error}
        return _case_page(request, ctx, case_id, actor, status=status_for(error), shipping=shown)
    return RedirectResponse(f"/cases/{case_id}?shipped=1", status_code=303)
