"""The pages' one filter set: money and dates through Babel (CLDR data), per locale.

Money is integer minor units; how many digits a currency has and how it is written (¥1,234.50,
JP¥1,235, €1.234,50) is CLDR's (``babel.numbers.get_currency_precision`` and
``format_currency``), not a table of ours. The amount becomes a ``Decimal`` by moving the
point, so no float ever touches it. ``minor_units`` reads an amount a person typed (``12.50``)
back the same way.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cache, lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from babel.core import Locale
from babel.dates import format_datetime, format_timedelta
from babel.numbers import (
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
)

__all__ = [
    "babel_locale",
    "datetime_text",
    "duration",
    "minor_units",
    "money",
    "number",
    "percent",
    "typed_amount",
]


def babel_locale(locale: str) -> str:
    """``zh-CN`` (the pages' tag, BCP 47) -> ``zh_CN`` (Babel's identifier)."""
    return locale.replace("-", "_")


@lru_cache(maxsize=8192)
def money(amount: int, currency: str, locale: str) -> str:
    """``amount`` minor units of ``currency`` as the locale writes it (remembered: a page
    writes the same few amounts many times, and Babel parses the locale at each call)."""
    digits = get_currency_precision(currency)
    value = Decimal(amount).scaleb(-digits)
    return format_currency(value, currency, locale=_locale(locale))


@cache
def _locale(locale: str) -> Locale:
    return Locale.parse(babel_locale(locale))


_TYPED = re.compile(r"\d{1,15}(\.\d+)?")


def minor_units(text: str, currency: str) -> int | None:
    """``text`` (digits with an optional point, as typed in a form: ``193.33``, ``50``) in
    minor units of ``currency``; None when it is not such an amount or has more decimals than
    the currency has digits."""
    typed = text.strip().replace(",", "")
    if not _TYPED.fullmatch(typed):
        return None
    value = Decimal(typed).scaleb(get_currency_precision(currency))
    return int(value) if value == value.to_integral_value() else None


def typed_amount(amount: int, currency: str) -> str:
    """``amount`` minor units as a person types it in a form (``193.33``): what
    ``minor_units`` reads back."""
    return str(Decimal(amount).scaleb(-get_currency_precision(currency)))


def number(count: int, locale: str) -> str:
    """A whole count (points) as the locale groups its digits: 1,250 (en), 1,250 (zh-CN)."""
    return format_decimal(count, locale=_locale(locale))


def percent(ratio: Fraction, locale: str) -> str:
    """A ratio as the locale writes a percentage, to one decimal (33.3%)."""
    value = Decimal(ratio.numerator) / Decimal(ratio.denominator)
    return format_percent(value, "#,##0.0%", locale=babel_locale(locale))


_Unit = Literal["day", "hour", "minute", "second"]
_UNITS: tuple[tuple[_Unit, int], ...] = (
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
    ("second", 1),
)


def duration(seconds: int, locale: str) -> str:
    """Whole seconds as the locale writes a span, in its two largest units (2 hr 5 min):
    each unit's words are CLDR's (``format_timedelta``), the rest is dropped, not rounded."""
    parts: list[str] = []
    left = max(0, seconds)
    for unit, size in _UNITS:
        count, left = divmod(left, size)
        if count and len(parts) < 2:
            span = timedelta(seconds=count * size)
            parts.append(
                format_timedelta(
                    span, granularity=unit, threshold=1, format="short", locale=babel_locale(locale)
                )
            )
        elif parts:
            break
    if not parts:
        return format_timedelta(timedelta(0), format="short", locale=babel_locale(locale))
    return " ".join(parts)


def datetime_text(
    at: datetime | str | None, locale: str, zone: ZoneInfo, *, fmt: str = "medium"
) -> str:
    """``at`` in the shop's ``zone`` (settings.display_timezone), in the locale's ``fmt``
    (short | medium | long); an ISO text (a plan's ``valid_until``) is read first."""
    if at is None or at == "":
        return ""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return format_datetime(at, format=fmt, tzinfo=zone, locale=babel_locale(locale))
