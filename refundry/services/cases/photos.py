"""The cases' photos: the customer's evidence and the inspection's, added and read back.

A photo is checked from its bytes (domain/photos.py: JPEG, PNG or WebP by its magic number,
at most ``PhotoLimits.max_bytes``), its bytes go to the photo storage under their SHA-256
(services/ports.py ``PhotoStorage``: local files by default), and a ``photos`` row says which
case holds it, of which kind, who added it and when, with an audit entry per photo, in the
transaction that adds it. A case holds at most ``max_per_case`` photos of each kind, counted
under the case's row lock. Who may add and see them is services/access.py's (11).

The bytes are written before the rows are committed: a refused or failed transaction leaves
a stored file no row names (content-addressed, so a retry writes the same file), never a row
without its file.

The request form sends its photos before the case exists (the "check your answers" step):
``stage_photos`` stores them and gives each a *staged reference* (``stage_ref``), signed for
the customer who sent it, that the form carries to the submission; ``staged_photo`` reads
one back, so a reference cannot be made up or taken from someone else.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, func, insert, select

from refundry.domain.photos import (
    PHOTO_TYPES,
    PhotoFile,
    PhotoLimits,
    PhotoRefused,
    check_count,
    keep_photo,
)
from refundry.services import access
from refundry.services.access import Actor, photo_kind, require_case_action, sees_desk_entries
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.process import load_case
from refundry.services.errors import NotFound
from refundry.services.ports import PhotoStorage
from refundry.services.uow import UnitOfWork
from refundry.store.tables import photos

if TYPE_CHECKING:  # opening.py records the request's photos with record_photos
    from refundry.services.cases.opening import CaseDesk

__all__ = [
    "Kept",
    "Photo",
    "add_photos",
    "case_photos",
    "check_uploads",
    "read_photo",
    "record_photos",
    "stage_photos",
    "stage_ref",
    "staged_photo",
    "store_photos",
]


@dataclass(frozen=True, slots=True)
class Photo:
    """A case's photo as its reader may see it (``by``: a role, the desk sees the actor)."""

    id: str
    case_id: str
    kind: str  # customer | inspection
    content_type: str
    size: int
    sha256: str
    created_at: datetime
    by: str


# A checked photo: its file (hash, type, size) and the bytes stored under that hash.
Kept = tuple[PhotoFile, bytes]


def check_uploads(uploads: Sequence[bytes], limits: PhotoLimits) -> list[Kept]:
    """Every upload checked (the first refusal wins, nothing stored), at most the per-case
    count at once: each photo's file and the bytes to store (without its metadata)."""
    check_count(0, len(uploads), limits)
    return [keep_photo(data, limits) for data in uploads]


def store_photos(storage: PhotoStorage, checked: Sequence[Kept]) -> list[PhotoFile]:
    """Store what ``check_uploads`` kept, each under its hash; the files."""
    for file, kept in checked:
        storage.put(file.sha256, kept)
    return [file for file, _ in checked]


def new_photo_id() -> str:
    return "ph_" + uuid.uuid4().hex[:20]


def _held(conn: Connection, case_id: str, kind: str) -> int:
    found = conn.execute(
        select(func.count()).where(photos.c.case_id == case_id, photos.c.kind == kind)
    ).scalar_one()
    return int(found)


def record_photos(
    conn: Connection,
    *,
    case_id: str,
    customer_id: str,
    kind: str,
    files: Sequence[PhotoFile],
    actor: Actor,
    now: datetime,
    trail: AuditTrail,
    limits: PhotoLimits,
    order_id: str | None = None,
) -> list[str]:
    """The rows and audit entries of ``files`` added to the case (whose row the caller holds
    locked, or just inserted); ``photo.too_many`` past the limit of ``kind``."""
    if not files:
        return []
    check_count(_held(conn, case_id, kind), len(files), limits)
    ids = []
    for file in files:
        photo_id = new_photo_id()
        ids.append(photo_id)
        conn.execute(
            insert(photos).values(
                id=photo_id,
                customer_id=customer_id,
                case_id=case_id,
                kind=kind,
                sha256=file.sha256,
                content_type=file.content_type,
                size=file.size,
                created_at=now,
                created_by=actor.tag,
            )
        )
        trail.record(
            "case.photo_added",
            order_id=order_id,
            case_id=case_id,
            photo_id=photo_id,
            kind=kind,
            sha256=file.sha256,
            content_type=file.content_type,
            size=file.size,
        )
    return ids


def add_photos(
    desk: CaseDesk,
    storage: PhotoStorage,
    case_id: str,
    *,
    actor: Actor,
    now: datetime,
    uploads: Sequence[bytes],
) -> list[Photo]:
    """Add photos to a case (the customer's evidence, or the inspection's: ``photo_kind``);
    one transaction, every photo or none. Who may comes first: a case the actor does not
    see is ``case.not_found`` whatever was sent."""
    with UnitOfWork(desk.engine) as uow:
        row = load_case(uow.conn, case_id, actor, lock=True)
        require_case_action(row, actor, "photos")
        checked = check_uploads(uploads, desk.photo_limits)
        if not checked:
            raise PhotoRefused("no photo was sent", code="photo.empty", field="photo")
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=row.customer_id)
        kind = photo_kind(actor)
        check_count(_held(uow.conn, case_id, kind), len(checked), desk.photo_limits)
        files = store_photos(storage, checked)  # nothing stored for a refused photo
        ids = record_photos(
            uow.conn,
            case_id=case_id,
            customer_id=row.customer_id,
            kind=kind,
            files=files,
            actor=actor,
            now=now,
            trail=trail,
            limits=desk.photo_limits,
            order_id=row.order_id,
        )
        trail.flush(uow.conn)
        uow.commit()
    by = actor.tag if sees_desk_entries(actor) else actor.role
    return [
        Photo(i, case_id, kind, f.content_type, f.size, f.sha256, now, by)
        for i, f in zip(ids, files, strict=True)
    ]


def _photo(row: object, actor: Actor) -> Photo:
    created_by: str = row.created_by  # type: ignore[attr-defined]
    return Photo(
        id=row.id,  # type: ignore[attr-defined]
        case_id=row.case_id,  # type: ignore[attr-defined]
        kind=row.kind,  # type: ignore[attr-defined]
        content_type=row.content_type,  # type: ignore[attr-defined]
        size=row.size,  # type: ignore[attr-defined]
        sha256=row.sha256,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        by=created_by if sees_desk_entries(actor) else created_by.partition(":")[0],
    )


def case_photos(engine: Engine, case_id: str, actor: Actor) -> list[Photo]:
    """The case's photos, oldest first, for whoever sees the case (else ``case.not_found``)."""
    with UnitOfWork(engine, readonly=True) as uow:
        load_case(uow.conn, case_id, actor)
        rows = uow.conn.execute(
            select(photos)
            .where(photos.c.case_id == case_id)
            .order_by(photos.c.created_at, photos.c.kind, photos.c.id)
        ).all()
    return [_photo(r, actor) for r in rows]


def read_photo(
    engine: Engine, storage: PhotoStorage, case_id: str, photo_id: str, actor: Actor
) -> tuple[Photo, bytes]:
    """One photo of a case and its bytes: ``case.not_found`` for a case the actor does not
    see, ``photo.not_found`` for a photo the case does not hold."""
    with UnitOfWork(engine, readonly=True) as uow:
        load_case(uow.conn, case_id, actor)
        row = uow.conn.execute(
            select(photos).where(photos.c.id == photo_id, photos.c.case_id == case_id)
        ).first()
    data = storage.get(row.sha256) if row is not None else None
    if row is None or data is None:
        raise NotFound(f"case {case_id!r} has no photo {photo_id!r}", code="photo.not_found")
    return _photo(row, actor), data


# -- staged photos (the request form's, before the case exists) -----------------------------


def _stage_mac(secret: bytes, actor: Actor, body: str) -> str:
    text = f"photo-stage|{actor.tag}|{body}".encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()[:32]


def stage_ref(secret: bytes, actor: Actor, file: PhotoFile) -> str:
    """A reference to a stored photo that only ``actor`` can give back (``staged_photo``)."""
    body = f"{file.sha256}.{PHOTO_TYPES[file.content_type]}.{file.size}"
    return f"{body}.{_stage_mac(secret, actor, body)}"


def staged_photo(secret: bytes, actor: Actor, ref: str) -> PhotoFile:
    """The photo a staged reference names, or ``photo.invalid`` when ``actor`` was not given
    it by ``stage_ref``."""
    body, _, mac = ref.rpartition(".")
    sha, _, rest = body.partition(".")
    ext, _, size = rest.partition(".")
    types = {e: t for t, e in PHOTO_TYPES.items()}
    if not hmac.compare_digest(mac, _stage_mac(secret, actor, body)) or ext not in types:
        raise PhotoRefused("a photo reference that was not ours", code="photo.invalid")
    return PhotoFile(sha, types[ext], int(size))


def stage_photos(
    desk: CaseDesk, storage: PhotoStorage, *, actor: Actor, uploads: Sequence[bytes]
) -> list[str]:
    """Check and store the request form's photos (a person who may open a case); their
    staged references."""
    access.require(actor, "case.open")
    files = store_photos(storage, check_uploads(uploads, desk.photo_limits))
    return [stage_ref(desk.identity_secret, actor, f) for f in files]
