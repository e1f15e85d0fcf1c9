"""Money: integer minor units with a currency, and the two ways refundry splits an amount.

* ``split_largest_remainder`` splits over parts in proportion to weights (ties to the earlier
  part), so the parts always sum to the whole.
* ``cumulative_part`` splits over time: the first ``k`` of ``n`` units carry
  ``floor(total * k / n)``, so after the last unit exactly ``total`` has moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refundry.domain.errors import CurrencyMismatch

__all__ = ["Money", "cumulative_part", "split_largest_remainder"]


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of one ISO 4217 currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise TypeError(f"Money amount must be an int of minor units, got {self.amount!r}")

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def split(self, weights: Sequence[int]) -> list[Money]:
        return [Money(p, self.currency) for p in split_largest_remainder(self.amount, weights)]

    def __repr__(self) -> str:
        return f"Money({self.amount} {self.currency})"


def split_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` over ``weights`` (non-negative ints) by largest remainder.

    Each part gets ``floor(total * w / W)``; the units left over go one each to the parts with
    the largest remainders, ties to the earlier part. With ``W == 0`` everything goes to the
    first part (there is nothing to be proportional to).
    """
    if not weights:
        if total:
            raise ValueError("cannot split a non-zero amount over no parts")
        return []
    whole = sum(weights)
    if whole == 0:
        return [total] + [0] * (len(weights) - 1)
    parts: list[int] = []
    remainders: list[tuple[int, int]] = []
    for i, w in enumerate(weights):
        q, r = divmod(total * w, whole)
        parts.append(q)
        remainders.append((-r, i))
    left = total - sum(parts)
    if left:
        remainders.sort()
        for _, i in remainders[:left]:
            parts[i] += 1
    return parts


def cumulative_part(total: int, k: int, n: int) -> int:
    """The share of ``total`` carried by the first ``k`` of ``n`` units: floor(total*k/n)."""
    if n <= 0:
        return total if k else 0
    return total * k // n
