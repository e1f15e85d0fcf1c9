"""One-time codes (SPEC §5): made from a random source passed in, kept only as a keyed hash.

The hash binds the code to its customer and purpose (HMAC-SHA256 under a server secret), so a
leaked ``otp_codes`` table gives neither the codes nor a way to test guesses offline, and a code
sent for one purpose cannot be replayed for another. Comparison is constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Protocol

from refundry.domain.errors import InvalidInput

__all__ = ["RandomSource", "code_hash", "matches", "new_code"]

MIN_LENGTH, MAX_LENGTH = 4, 12


class RandomSource(Protocol):
    """What ``secrets`` offers (the module itself fits); tests pass a seeded fake."""

    def randbelow(self, exclusive_upper_bound: int, /) -> int: ...


def new_code(rng: RandomSource, *, length: int) -> str:
    """``length`` decimal digits, uniformly drawn (leading zeros kept)."""
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise InvalidInput(
            f"code_length must be between {MIN_LENGTH} and {MAX_LENGTH}",
            code="policy.invalid",
            field="identity.code_length",
        )
    return f"{rng.randbelow(10**length):0{length}d}"


def code_hash(secret: bytes, *, customer_id: str, purpose: str, code: str) -> str:
    """HMAC-SHA256 (hex, 64 characters) of the code bound to its customer and purpose."""
    # A JSON list keeps the parts apart: ("a", "bc") and ("ab", "c") never collide.
    message = json.dumps([customer_id, purpose, code], ensure_ascii=False, separators=(",", ":"))
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def matches(
    stored_hash: str, *, secret: bytes, customer_id: str, purpose: str, candidate: str
) -> bool:
    """Whether ``candidate`` is the code behind ``stored_hash``, compared in constant time."""
    given = code_hash(secret, customer_id=customer_id, purpose=purpose, code=candidate.strip())
    return hmac.compare_digest(given.encode("ascii"), stored_hash.encode("ascii"))
