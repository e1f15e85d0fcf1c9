"""A photo is kept without the metadata a phone writes into it (domain/photos.py)."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundry.domain.photos import (
    PhotoLimits,
    PhotoRefused,
    _read_orientation,
    check_photo,
    strip_metadata,
)


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def exif(orientation: int, extra: bytes) -> bytes:
    """A big-endian EXIF block: IFD0 with the orientation and a GPS-ish ASCII value."""
    entries = [
        struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0),
        struct.pack(">HHII", 0x8825, 4, 1, 0),  # the GPS IFD pointer (its value is ours)
    ]
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", len(entries))
    tiff += b"".join(entries) + struct.pack(">I", 0) + b"GPSLatitude 31.2304N " + extra
    return segment(0xE1, b"Exif\x00\x00" + tiff)


JFIF = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
ICC = segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + b"colour")
DQT = segment(0xDB, b"\x00" + bytes(range(64)))
SOF = segment(0xC0, b"\x08\x00\x10\x00\x10\x01\x01\x11\x00")
DHT = segment(0xC4, b"\x00" + bytes(16) + b"")
SOS = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
# entropy-coded data with a stuffed 0xFF00 and a restart marker, which are not segment ends
SCAN = b"\x12\x34\xff\x00\x56\xff\xd0\x78\x9a"
EOI = b"\xff\xd9"


def jpeg(*, orientation: int = 6, secret: bytes = b"SECRET-place") -> bytes:
    xmp = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>" + secret + b"</x>")
    iptc = segment(0xED, b"Photoshop 3.0\x00" + secret)
    comment = segment(0xFE, b"taken at " + secret)
    return (
        b"\xff\xd8"
        + JFIF
        + exif(orientation, secret)
        + xmp
        + ICC
        + iptc
        + comment
        + DQT
        + SOF
        + DHT
        + SOS
        + SCAN
        + EOI
        + b"trailing motion photo with Exif "
        + secret
    )


def test_a_jpeg_keeps_its_picture_and_orientation_and_loses_the_rest() -> None:
    kept = strip_metadata(jpeg())
    for gone in (b"SECRET", b"GPSLatitude", b"xmpmeta", b"Photoshop", b"taken at", b"trailing"):
        assert gone not in kept
    assert kept.startswith(b"\xff\xd8" + JFIF)  # JFIF's header still comes first
    assert kept.endswith(ICC + DQT + SOF + DHT + SOS + SCAN + EOI)
    minimal = kept[2 + len(JFIF) : kept.index(ICC)]
    assert minimal[:2] == b"\xff\xe1" and minimal[4:10] == b"Exif\x00\x00"
    assert _read_orientation(minimal[10:]) == 6
    assert strip_metadata(kept) == kept  # stripped once is stripped


def test_a_progressive_jpeg_keeps_every_scan() -> None:
    second = segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + b"\xab\xff\x00\xcd"
    data = b"\xff\xd8" + JFIF + DQT + SOF + DHT + SOS + SCAN + DHT + second + EOI
    assert strip_metadata(data) == data  # nothing to drop, nothing changed


def test_a_jpeg_without_orientation_gets_no_exif_block() -> None:
    data = b"\xff\xd8" + JFIF + segment(0xFE, b"hello") + DQT + SOF + SOS + SCAN + EOI
    assert strip_metadata(data) == b"\xff\xd8" + JFIF + DQT + SOF + SOS + SCAN + EOI


@given(
    secret=st.binary(min_size=1, max_size=300).map(lambda b: b"S3CR3T" + b),
    orientation=st.integers(min_value=1, max_value=8),
)
def test_no_metadata_byte_survives_whatever_it_holds(secret: bytes, orientation: int) -> None:
    kept = strip_metadata(jpeg(orientation=orientation, secret=secret))
    assert b"S3CR3T" not in kept
    assert kept.endswith(SOS + SCAN + EOI)
    assert _read_orientation(kept[2 + len(JFIF) + 10 :]) == orientation


def chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def test_a_png_loses_its_text_exif_and_time_chunks() -> None:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\xff"))
    iend = chunk(b"IEND", b"")
    data = (
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + chunk(b"tEXt", b"Comment\x00SECRET")
        + chunk(b"eXIf", b"MM\x00*SECRET")
        + chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00SECRET")
        + chunk(b"tIME", b"\x07\xea\x0c\x07\x0a\x00\x00")
        + idat
        + iend
    )
    assert strip_metadata(data) == b"\x89PNG\r\n\x1a\n" + ihdr + idat + iend


def test_a_webp_loses_its_exif_and_xmp_chunks_and_their_flags() -> None:
    def riff_chunk(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")

    vp8x = riff_chunk(b"VP8X", bytes([0x08 | 0x04 | 0x10]) + bytes(9))  # EXIF, XMP, alpha
    image = riff_chunk(b"VP8 ", b"\x01\x02\x03")  # odd: padded
    body = vp8x + image + riff_chunk(b"EXIF", b"SECRET") + riff_chunk(b"XMP ", b"SECRET!")
    data = b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body
    kept = strip_metadata(data)
    want = riff_chunk(b"VP8X", bytes([0x10]) + bytes(9)) + image
    assert kept == b"RIFF" + struct.pack("<I", len(want) + 4) + b"WEBP" + want


@pytest.mark.parametrize(
    "broken",
    [
        b"\xff\xd8" + JFIF[:-3],  # a segment cut short
        b"\xff\xd8" + JFIF + b"\x00\x00garbage",  # not a marker where one must be
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(13))[:-6],  # a chunk cut short
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(13)),  # no end chunk
        b"RIFF" + struct.pack("<I", 400) + b"WEBPVP8 ",  # shorter than its header says
    ],
)
def test_a_file_whose_structure_cannot_be_walked_is_refused(broken: bytes) -> None:
    with pytest.raises(PhotoRefused) as refused:
        check_photo(broken, PhotoLimits())
    assert (refused.value.code, refused.value.field) == ("photo.invalid", "photo")


def test_the_stored_photo_is_named_by_the_stripped_bytes() -> None:
    data = jpeg()
    file = check_photo(data, PhotoLimits())
    kept = strip_metadata(data)
    assert (file.sha256, file.size) == (hashlib.sha256(kept).hexdigest(), len(kept))
    assert file.size < len(data)
