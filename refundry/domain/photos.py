"""Photos as evidence: what a picture file is (by its own bytes) and how many a case may hold.

A photo's type is read from its first bytes (its magic number), never from the file name or
the Content-Type the client sent: a browser or a script can call anything ``image/png``, and
the server later serves the bytes with the type found here (and ``nosniff``), so what is
served is what was checked. Only JPEG, PNG and WebP are taken: every phone and browser makes
them, and no other format reaches a browser's image decoder through refundry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from refundry.domain.errors import InvalidInput

__all__ = [
    "KINDS",
    "PHOTO_TYPES",
    "PhotoFile",
    "PhotoLimits",
    "PhotoRefused",
    "check_count",
    "check_photo",
    "sniff",
]

# The image types refundry takes, with the extension a download would get.
PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
# Who took a case's photo: the customer (with the request, or later), or the inspection.
KINDS = ("customer", "inspection")

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


class PhotoRefused(InvalidInput):
    """A photo refundry does not take: ``photo.too_large``, ``photo.unsupported_type``,
    ``photo.too_many``, ``photo.empty``."""

    code = "photo.invalid"


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """The largest photo (bytes) and how many photos of one kind a case may hold."""

    max_bytes: int = 8 * 1024 * 1024
    max_per_case: int = 6


@dataclass(frozen=True, slots=True)
class PhotoFile:
    """A checked photo: its content's SHA-256 (its storage key), type and size."""

    sha256: str
    content_type: str
    size: int


def sniff(data: bytes) -> str | None:
    """The image type ``data`` starts like, or None when it is none of PHOTO_TYPES."""
    if data.startswith(_PNG):
        return "image/png"
    if data.startswith(_JPEG):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_photo(data: bytes, limits: PhotoLimits) -> PhotoFile:
    """``data`` as a photo refundry takes, or the refusal naming why."""
    if not data:
        raise PhotoRefused("the photo is empty", code="photo.empty", field="photo")
    if len(data) > limits.max_bytes:
        raise PhotoRefused(
            f"a photo may be at most {limits.max_bytes} bytes; this one is {len(data)}",
            code="photo.too_large",
            field="photo",
        )
    content_type = sniff(data)
    if content_type is None:
        raise PhotoRefused(
            "only JPEG, PNG and WebP photos are taken (read from the file itself)",
            code="photo.unsupported_type",
            field="photo",
        )
    return PhotoFile(hashlib.sha256(data).hexdigest(), content_type, len(data))


def check_count(held: int, adding: int, limits: PhotoLimits) -> None:
    """A case holding ``held`` photos of a kind may take ``adding`` more within the limit."""
    if held + adding > limits.max_per_case:
        raise PhotoRefused(
            f"a case holds at most {limits.max_per_case} photos of each kind; "
            f"it has {held}, and {adding} more were sent",
            code="photo.too_many",
            field="photo",
        )
