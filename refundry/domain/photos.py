"""Photos as evidence: what a picture file is (by its own bytes) and how many a case may hold.

A photo's type is read from its first bytes (its magic number), never from the file name or
the Content-Type the client sent: a browser or a script can call anything ``image/png``, and
the server later serves the bytes with the type found here (and ``nosniff``), so what is
served is what was checked. Only JPEG, PNG and WebP are taken: every phone and browser makes
them, and no other format reaches a browser's image decoder through refundry.

A photo is kept **without its metadata** (``strip_metadata``): a phone writes where it was
taken (GPS), when, and with which device into EXIF / XMP / IPTC / text chunks, and refundry
shows customers' photos to merchants. The segments and chunks that carry them are dropped
byte for byte — the picture itself is not decoded or re-encoded — except a JPEG's
orientation, kept as a minimal EXIF block holding that one tag, so a phone photo is not shown
sideways. A file whose structure cannot be walked is refused (``photo.invalid``).
"""

from __future__ import annotations

import hashlib
import struct
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
    "keep_photo",
    "sniff",
    "strip_metadata",
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
    return keep_photo(data, limits)[0]


def keep_photo(data: bytes, limits: PhotoLimits) -> tuple[PhotoFile, bytes]:
    """``data`` checked (``check_photo``), with the bytes to store: the photo without its
    metadata, which its hash and size are of."""
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
    kept = strip_metadata(data)
    return PhotoFile(hashlib.sha256(kept).hexdigest(), content_type, len(kept)), kept


def check_count(held: int, adding: int, limits: PhotoLimits) -> None:
    """A case holding ``held`` photos of a kind may take ``adding`` more within the limit."""
    if held + adding > limits.max_per_case:
        raise PhotoRefused(
            f"a case holds at most {limits.max_per_case} photos of each kind; "
            f"it has {held}, and {adding} more were sent",
            code="photo.too_many",
            field="photo",
        )


def _invalid(why: str) -> PhotoRefused:
    return PhotoRefused(f"the photo's file is damaged: {why}", code="photo.invalid", field="photo")


def strip_metadata(data: bytes) -> bytes:
    """``data`` without the metadata its format can carry (EXIF, XMP, IPTC, comments, text
    chunks); a JPEG keeps its orientation. The same bytes for a file stripped before."""
    kind = sniff(data)
    if kind == "image/jpeg":
        return _strip_jpeg(data)
    if kind == "image/png":
        return _strip_png(data)
    if kind == "image/webp":
        return _strip_webp(data)
    return data


# JPEG: APP0 (JFIF), APP2 (the ICC colour profile) and APP14 (Adobe's colour transform) say how
# to draw the picture; every other APPn (APP1: EXIF and XMP, APP13: IPTC…) and COM are metadata.
_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}
_ORIENTATION = 0x0112


def _strip_jpeg(data: bytes) -> bytes:
    out = bytearray(data[:2])
    at, orientation = 2, None
    while True:
        if at == len(data):  # the file ends with its last scan, without the end marker
            return bytes(out)
        if at + 2 > len(data) or data[at] != 0xFF:
            raise _invalid("a JPEG segment does not start where the previous one ended")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xD9 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            out += data[at : at + 2]
            at += 2
            if marker == 0xD9:
                return bytes(out)
            continue
        if at + 4 > len(data):
            raise _invalid("a JPEG segment is cut short")
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        end = at + 2 + length
        if length < 2 or end > len(data):
            raise _invalid("a JPEG segment runs past the end of the file")
        if marker == 0xDA:  # a scan: its header, then the picture's data, copied as they are
            if orientation is not None:
                _insert_after_jfif(out, _exif_orientation(orientation))
                orientation = None
            scan_end = _scan_end(data, end)
            out += data[at:scan_end]
            at = scan_end
            continue
        if marker == 0xE1 and data[at + 4 : at + 10] == b"Exif\x00\x00":
            orientation = _read_orientation(data[at + 10 : end]) or orientation
        if (0xE0 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP) or marker == 0xFE:
            at = end
            continue
        out += data[at:end]
        at = end


def _scan_end(data: bytes, at: int) -> int:
    """Where the entropy-coded data starting at ``at`` ends: the next marker that is not a
    stuffed 0xFF00 or a restart marker (the end of the file when there is none)."""
    while True:
        at = data.find(b"\xff", at)
        if at < 0 or at + 1 >= len(data):
            return len(data)
        following = data[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            at += 2
        elif following == 0xFF:
            at += 1
        else:
            return at


def _insert_after_jfif(out: bytearray, segment: bytes) -> None:
    """Put ``segment`` right after the start marker, or after the JFIF header that must
    come first when there is one."""
    at = 2
    if out[2:4] == b"\xff\xe0":
        (length,) = struct.unpack(">H", out[4:6])
        at = 4 + length
    out[at:at] = segment


def _read_orientation(tiff: bytes) -> int | None:
    """The Orientation tag (1–8) of an EXIF block's first IFD, or None."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", tiff[4:8])
    if first + 2 > len(tiff):
        return None
    (count,) = struct.unpack(order + "H", tiff[first : first + 2])
    for n in range(count):
        entry = first + 2 + 12 * n
        if entry + 12 > len(tiff):
            return None
        tag, kind, _count = struct.unpack(order + "HHI", tiff[entry : entry + 8])
        if tag == _ORIENTATION and kind == 3:
            (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
            return value if 1 <= value <= 8 else None
    return None


def _exif_orientation(value: int) -> bytes:
    """An APP1 EXIF segment holding nothing but the orientation."""
    tiff = b"II*\x00" + struct.pack("<I", 8)  # little-endian TIFF, IFD0 right after
    tiff += struct.pack("<H", 1) + struct.pack("<HHIHH", _ORIENTATION, 3, 1, value, 0)
    tiff += struct.pack("<I", 0)  # no next IFD
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


# PNG: the text chunks, EXIF and the modification time are metadata; the rest draws the image.
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def _strip_png(data: bytes) -> bytes:
    out = bytearray(data[:8])
    at = 8
    while at < len(data):
        if at + 12 > len(data):
            raise _invalid("a PNG chunk is cut short")
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        end = at + 12 + length
        if end > len(data):
            raise _invalid("a PNG chunk runs past the end of the file")
        if kind not in _PNG_DROP:
            out += data[at:end]
        at = end
        if kind == b"IEND":
            return bytes(out)
    raise _invalid("a PNG without its end chunk")


# WebP (RIFF): the EXIF and XMP chunks, and their flags in the extended header (VP8X).
_WEBP_DROP = {b"EXIF", b"XMP "}
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _strip_webp(data: bytes) -> bytes:
    (size,) = struct.unpack("<I", data[4:8])
    if size + 8 > len(data) or size < 4:
        raise _invalid("the WebP file is shorter than its header says")
    body = bytearray()
    at, end = 12, 8 + size
    while at < end:
        if at + 8 > end:
            raise _invalid("a WebP chunk is cut short")
        kind = data[at : at + 4]
        (length,) = struct.unpack("<I", data[at + 4 : at + 8])
        stop = at + 8 + length + (length & 1)
        if at + 8 + length > end:
            raise _invalid("a WebP chunk runs past the end of the file")
        chunk = bytearray(data[at:stop])
        if kind == b"VP8X" and length >= 1:
            chunk[8] &= ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
        if kind not in _WEBP_DROP:
            body += chunk
        at = stop
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + bytes(body)
