from __future__ import annotations

import pytest

from refundry.domain.errors import CurrencyMismatch
from refundry.domain.money import Money, cumulative_part, split_largest_remainder


def test_largest_remainder_sums_exactly_and_ties_go_to_the_earlier_part() -> None:
    assert split_largest_remainder(10000, [40000, 20000]) == [6667, 3333]
    assert split_largest_remainder(1, [1, 1]) == [1, 0]
    assert split_largest_remainder(2, [1, 1, 1]) == [1, 1, 0]
    assert split_largest_remainder(5, [0, 0]) == [5, 0]


def test_cumulative_rounding_moves_the_whole_after_the_last_unit() -> None:
    parts = [cumulative_part(1000, k, 3) - cumulative_part(1000, k - 1, 3) for k in (1, 2, 3)]
    assert parts == [333, 333, 334]
    assert sum(parts) == 1000


def test_money_refuses_to_mix_currencies() -> None:
    with pytest.raises(CurrencyMismatch) as err:
        Money(100, "CNY") + Money(100, "USD")
    assert err.value.code == "money.currency_mismatch"
    assert Money(100, "CNY") + Money(50, "CNY") == Money(150, "CNY")


def test_money_rejects_non_integer_amounts() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "CNY")  # type: ignore[arg-type]


def test_money_split_keeps_currency_and_sum() -> None:
    parts = Money(100, "USD").split([1, 1, 1])
    assert [p.amount for p in parts] == [34, 33, 33]
    assert {p.currency for p in parts} == {"USD"}


def test_tender_in_another_currency_than_the_order_is_refused() -> None:
    from refundry.demo import worked_examples as ex
    from refundry.domain.json_io import parse_order

    order = ex.order("o-usd", [ex.line("A", 1000)], 1000)
    order["tenders"][0]["currency"] = "USD"
    with pytest.raises(CurrencyMismatch) as err:
        parse_order(order)
    assert err.value.field == "order.tenders[0].currency"
