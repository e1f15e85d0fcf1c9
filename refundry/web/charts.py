"""Bar charts drawn on the server as inline SVG (the dashboard's; no script, no library).

``bar_chart`` turns the values to draw into bars with integer geometry in the chart's own
units (a ``viewBox``, so the chart scales to the page's width): each bar's length is its
share of the largest value. The template (templates/desk/dashboard.html) writes the SVG with
a title and a description for screen readers, and the same values as a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["BAR_HEIGHT", "LABEL_WIDTH", "LENGTH", "WIDTH", "Bar", "BarChart", "bar_chart"]

# Small enough that the 15-unit text stays readable when a 375 px phone scales the chart down.
WIDTH = 540  # the viewBox's width
LABEL_WIDTH = 190  # the bars' labels, left of them
LENGTH = 250  # the longest bar; the value's text goes after the bar
BAR_HEIGHT = 28
GAP = 8


@dataclass(frozen=True, slots=True)
class Bar:
    key: str  # what the bar stands for: a reason code, a merchant id, a stage, a bound
    value: int | Fraction
    length: int  # 0..LENGTH, rounded down; a nonzero value is at least 1 unit long
    y: int  # top of the bar


@dataclass(frozen=True, slots=True)
class BarChart:
    bars: tuple[Bar, ...]
    height: int  # the viewBox's height
    width: int = WIDTH
    label_width: int = LABEL_WIDTH
    bar_height: int = BAR_HEIGHT


def bar_chart(values: Sequence[tuple[str, int | Fraction]]) -> BarChart:
    """One horizontal bar per (key, value), in the order given; negative values draw as 0."""
    top = max((v for _, v in values), default=0)
    bars = []
    for i, (key, value) in enumerate(values):
        length = 0
        if top > 0 and value > 0:
            length = max(1, int(Fraction(value) * LENGTH // Fraction(top)))
        bars.append(Bar(key=key, value=value, length=length, y=GAP + i * (BAR_HEIGHT + GAP)))
    return BarChart(bars=tuple(bars), height=GAP + len(bars) * (BAR_HEIGHT + GAP))
