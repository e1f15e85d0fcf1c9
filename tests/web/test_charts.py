"""The dashboard's bar charts (refundry/web/charts.py) and the figures' words (formats)."""

from __future__ import annotations

from fractions import Fraction

from refundry.web.charts import BAR_HEIGHT, LENGTH, bar_chart
from refundry.web.formats import duration, percent


def test_each_bar_is_its_share_of_the_longest() -> None:
    chart = bar_chart([("a", 10), ("b", 5), ("c", 0), ("d", 1), ("e", -3)])
    assert [b.length for b in chart.bars] == [LENGTH, LENGTH // 2, 0, LENGTH // 10, 0]
    assert [b.y for b in chart.bars] == [8 + i * (BAR_HEIGHT + 8) for i in range(5)]
    assert chart.height == 8 + 5 * (BAR_HEIGHT + 8)


def test_a_tiny_value_still_shows_and_ratios_draw_exactly() -> None:
    chart = bar_chart([("big", 100_000), ("tiny", 1)])
    assert [b.length for b in chart.bars] == [LENGTH, 1]
    rates = bar_chart([("x", Fraction(1, 4)), ("y", Fraction(1, 2))])
    assert [b.length for b in rates.bars] == [LENGTH // 2, LENGTH]


def test_nothing_to_draw() -> None:
    assert bar_chart([]).bars == ()
    assert [b.length for b in bar_chart([("a", 0), ("b", 0)]).bars] == [0, 0]


def test_spans_and_percentages_are_written_per_locale() -> None:
    assert [duration(s, "en") for s in (0, 45, 60, 7500, 90061)] == [
        "0 sec",
        "45 sec",
        "1 min",
        "2 hr 5 min",
        "1 day 1 hr",
    ]
    assert duration(7500, "zh-CN") == "2小时 5分钟"
    assert percent(Fraction(1, 3), "en") == "33.3%"
    assert percent(Fraction(0), "zh-CN") == "0.0%"
