"""The cases' photos on the pages: one photo read back, and the customer adding photos.

``/cases/{id}/photos/{photo}`` answers any signed-in person who sees the case (the customer,
the merchant of its lines, the desk: services/access.py) with the photo's bytes, served as
the API serves them (refundry/api/routes/photos.py: the sniffed type, ``nosniff``, ``inline``,
``default-src 'none'``); anyone else gets the same 404 page as for a case that does not
exist. The customer's case page has a form that posts more photos to ``/cases/{id}/photos``
(multipart, CSRF-checked like every form) and comes back to the case page.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ContextDep
from refundry.api.routes.photos import photo_response
from refundry.domain.errors import RefundryError
from refundry.services.cases.photos import add_photos, read_photo
from refundry.web.pages import NotSignedIn, page_router
from refundry.web.routes.orders import uploads
from refundry.web.session import CheckedForm, session_actor

__all__ = ["router"]

router = page_router()


@router.get("/cases/{case_id}/photos/{photo_id}")
def photo(case_id: str, photo_id: str, request: Request, ctx: ContextDep) -> Response:
    actor = session_actor(ctx, request)
    if actor is None:
        raise NotSignedIn
    found, data = read_photo(ctx.engine, ctx.runtime.photo_storage, case_id, photo_id, actor)
    return photo_response(found, data)


@router.post("/cases/{case_id}/photos")
def add(case_id: str, request: Request, form: CheckedForm, ctx: ContextDep) -> Response:
    """More photos from the customer; a refusal comes back on the case page, nothing added."""
    actor = session_actor(ctx, request)
    if actor is None:
        raise NotSignedIn
    try:
        add_photos(
            ctx.desk,
            ctx.runtime.photo_storage,
            case_id,
            actor=actor,
            now=ctx.now(),
            uploads=uploads(form),
        )
    except RefundryError as error:
        if not error.code.startswith("photo."):
            raise
        from refundry.web.routes.cases import case_page_refused

        return case_page_refused(request, ctx, case_id, actor, error)
    return RedirectResponse(f"/cases/{case_id}?photos=1", status_code=303)
