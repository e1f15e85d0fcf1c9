"""A case's photos: add one (multipart), list them, read one back.

Who may is services/access.py's (11): the case's customer (its evidence), the merchant of all
its lines or an agent (the inspection's) add; whoever sees the case reads. A photo is served
as the type read from its bytes when it was added, with ``nosniff``, ``inline`` and a
Content-Security-Policy of ``default-src 'none'``: a file that is not the picture it claims
to be was refused on the way in, and even then the browser would run nothing in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Path, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.domain.photos import PHOTO_TYPES
from refundry.services.cases.photos import Photo, add_photos, case_photos, read_photo

__all__ = ["PHOTO_HEADERS", "photo_response", "router"]

router = APIRouter(prefix="/v1/cases", tags=["photos"], route_class=OneHopRoute)

CaseId = Annotated[Id, Path()]
PhotoId = Annotated[Id, Path()]

# What a photo is served with: the browser shows it and does nothing else with it.
PHOTO_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}


class PhotoView(BaseModel):
    id: str
    case_id: str
    kind: str  # customer | inspection
    content_type: str  # read from the bytes: image/jpeg | image/png | image/webp
    size: int  # bytes
    sha256: str
    created_at: datetime
    by: str  # the role that added it (the desk sees who)
    url: str  # where to read it back (GET)


class PhotoList(BaseModel):
    items: list[PhotoView]


def _view(photo: Photo) -> PhotoView:
    url = f"/v1/cases/{photo.case_id}/photos/{photo.id}"
    return PhotoView(
        id=photo.id,
        case_id=photo.case_id,
        kind=photo.kind,
        content_type=photo.content_type,
        size=photo.size,
        sha256=photo.sha256,
        created_at=photo.created_at,
        by=photo.by,
        url=url,
    )


def photo_response(photo: Photo, data: bytes) -> Response:
    """The photo's bytes as the type found in them, shown inline and never run."""
    name = f"{photo.id}.{PHOTO_TYPES[photo.content_type]}"
    headers = PHOTO_HEADERS | {"Content-Disposition": f'inline; filename="{name}"'}
    return Response(content=data, media_type=photo.content_type, headers=headers)


@router.post(
    "/{case_id}/photos",
    status_code=201,
    response_model=PhotoView,
    responses=problems(401, 403, 404, 409, 415, 422),
)
async def add_case_photo(
    case_id: CaseId,
    actor: ActorDep,
    ctx: ContextDep,
    response: Response,
    photo: Annotated[UploadFile | None, File(description="a JPEG, PNG or WebP file")] = None,
) -> PhotoView:
    """Add a photo to the case (multipart/form-data, field ``photo``): the customer's
    evidence, or the inspection's when a merchant or an agent adds it. At most
    ``photo_max_bytes`` (413 ``photo.too_large``), JPEG, PNG or WebP by its bytes whatever
    the part's Content-Type says (415 ``photo.unsupported_type``), at most
    ``photo_max_per_case`` of each kind per case (409 ``photo.too_many``)."""
    data = await photo.read() if photo is not None else b""
    added = await run_in_threadpool(
        add_photos,
        ctx.desk,
        ctx.runtime.photo_storage,
        case_id,
        actor=actor,
        now=ctx.now(),
        uploads=[data] if photo is not None else [],
    )
    response.headers["Location"] = f"/v1/cases/{case_id}/photos/{added[0].id}"
    return _view(added[0])


@router.get("/{case_id}/photos", response_model=PhotoList, responses=problems(401, 404, 422))
def list_case_photos(case_id: CaseId, actor: ActorDep, ctx: ContextDep) -> PhotoList:
    """The case's photos, oldest first, each with the URL to read it."""
    return PhotoList(items=[_view(p) for p in case_photos(ctx.engine, case_id, actor)])


@router.get(
    "/{case_id}/photos/{photo_id}",
    response_class=Response,
    responses={
        200: {
            "description": "the photo's bytes, as the type read from them",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in PHOTO_TYPES},
        },
        **problems(401, 404, 422),
    },
)
def read_case_photo(
    case_id: CaseId, photo_id: PhotoId, actor: ActorDep, ctx: ContextDep
) -> Response:
    """One photo's bytes (404 ``photo.not_found`` for a photo the case does not hold)."""
    photo, data = read_photo(ctx.engine, ctx.runtime.photo_storage, case_id, photo_id, actor)
    return photo_response(photo, data)
