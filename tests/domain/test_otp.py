"""One-time codes: generation from an injected source, keyed hash, constant-time matching."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundry.domain import otp
from refundry.domain.errors import InvalidInput

SECRET = b"test-secret-not-for-production"


class FixedSource:
    """Hands out the given numbers in turn, recording the bounds asked for."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.bounds: list[int] = []

    def randbelow(self, exclusive_upper_bound: int, /) -> int:
        self.bounds.append(exclusive_upper_bound)
        return self.values.pop(0)


def test_code_is_one_uniform_draw_padded_to_its_length() -> None:
    source = FixedSource(42, 999999)
    assert otp.new_code(source, length=6) == "000042"
    assert otp.new_code(source, length=6) == "999999"
    assert source.bounds == [1_000_000, 1_000_000]


def test_secrets_module_is_a_random_source() -> None:
    code = otp.new_code(secrets, length=8)
    assert len(code) == 8 and code.isdigit()


@pytest.mark.parametrize("length", [3, 13])
def test_unreasonable_length_is_a_policy_error(length: int) -> None:
    with pytest.raises(InvalidInput) as err:
        otp.new_code(FixedSource(1), length=length)
    assert (err.value.code, err.value.field) == ("policy.invalid", "identity.code_length")


def test_hash_is_hmac_sha256_of_customer_purpose_and_code() -> None:
    expected = hmac.new(SECRET, b'["c-1","case.submit","123456"]', hashlib.sha256).hexdigest()
    got = otp.code_hash(SECRET, customer_id="c-1", purpose="case.submit", code="123456")
    assert got == expected
    assert len(got) == 64 and "123456" not in got


@pytest.mark.parametrize(
    ("customer_id", "purpose", "candidate", "secret", "ok"),
    [
        ("c-1", "case.submit", "123456", SECRET, True),
        ("c-1", "case.submit", " 123456 ", SECRET, True),  # pasted with spaces
        ("c-1", "case.submit", "123457", SECRET, False),
        ("c-2", "case.submit", "123456", SECRET, False),  # another customer's code
        ("c-1", "payout", "123456", SECRET, False),  # another purpose
        ("c-1", "case.submit", "123456", b"other-secret", False),
        ("c-1", "case.submit", "", SECRET, False),
    ],
)
def test_match_needs_same_code_customer_purpose_and_secret(
    customer_id: str, purpose: str, candidate: str, secret: bytes, ok: bool
) -> None:
    stored = otp.code_hash(SECRET, customer_id="c-1", purpose="case.submit", code="123456")
    assert (
        otp.matches(
            stored, secret=secret, customer_id=customer_id, purpose=purpose, candidate=candidate
        )
        is ok
    )


def test_parts_cannot_be_shifted_between_customer_and_purpose() -> None:
    a = otp.code_hash(SECRET, customer_id="c-1x", purpose="y", code="1234")
    b = otp.code_hash(SECRET, customer_id="c-1", purpose="xy", code="1234")
    assert a != b


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    stored = otp.code_hash(SECRET, customer_id="c-1", purpose="p", code="5555")
    assert otp.matches(stored, secret=SECRET, customer_id="c-1", purpose="p", candidate="5555")
    assert not otp.matches(stored, secret=SECRET, customer_id="c-1", purpose="p", candidate="5556")
    assert len(calls) == 2
    assert calls[0] == (stored.encode(), stored.encode())


@given(code=st.from_regex(r"\A[0-9]{6}\Z"), other=st.from_regex(r"\A[0-9]{6}\Z"))
def test_only_the_code_itself_matches(code: str, other: str) -> None:
    stored = otp.code_hash(SECRET, customer_id="c", purpose="p", code=code)
    assert otp.matches(stored, secret=SECRET, customer_id="c", purpose="p", candidate=other) is (
        other == code
    )
