"""A photo's type is read from its bytes, its size and a case's count are limited."""

from __future__ import annotations

import hashlib

import pytest

from refundry.domain.photos import PhotoLimits, PhotoRefused, check_count, check_photo, sniff
from tests.photo_files import JPEG, WEBP, png

LIMITS = PhotoLimits(max_bytes=1024, max_per_case=2)


def test_jpeg_png_and_webp_are_known_by_their_first_bytes() -> None:
    assert (sniff(JPEG), sniff(png()), sniff(WEBP)) == ("image/jpeg", "image/png", "image/webp")


@pytest.mark.parametrize(
    "data",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"GIF89a" + b"\x00" * 20,
        b"%PDF-1.7\n",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but not WebP
        b"<html><body>a page named photo.png</body></html>",
    ],
)
def test_anything_else_is_refused_as_unsupported_whatever_it_is_called(data: bytes) -> None:
    with pytest.raises(PhotoRefused) as refused:
        check_photo(data, LIMITS)
    assert (refused.value.code, refused.value.field) == ("photo.unsupported_type", "photo")


def test_a_photo_is_named_by_its_sha256_with_its_type_and_size() -> None:
    data = png()
    checked = check_photo(data, LIMITS)
    assert checked.sha256 == hashlib.sha256(data).hexdigest()
    assert (checked.content_type, checked.size) == ("image/png", len(data))


def test_a_photo_over_the_size_limit_is_refused_at_one_byte_over() -> None:
    at_limit = JPEG + b"\x00" * (LIMITS.max_bytes - len(JPEG))
    # taken at the limit; what follows the end marker is not kept (strip_metadata)
    assert check_photo(at_limit, LIMITS).size == len(JPEG)
    with pytest.raises(PhotoRefused) as refused:
        check_photo(at_limit + b"\x00", LIMITS)
    assert refused.value.code == "photo.too_large"


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(PhotoRefused) as refused:
        check_photo(b"", LIMITS)
    assert refused.value.code == "photo.empty"


def test_a_case_takes_photos_up_to_its_count() -> None:
    check_count(0, 2, LIMITS)
    check_count(1, 1, LIMITS)
    with pytest.raises(PhotoRefused) as refused:
        check_count(1, 2, LIMITS)
    assert refused.value.code == "photo.too_many"
