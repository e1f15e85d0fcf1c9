"""The pages' one filter set: money and dates through Babel (CLDR data), per locale.

Money is integer minor units; how many digits a currency has and how it is written (¥1,234.50,
JP¥1,235, €1.234,50) is CLDR's (``babel.numbers.get_currency_precision`` and
``format_currency``), not a table of ours. The amount becomes a ``Decimal`` by moving the
point, so no float ever touches it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency, get_currency_precision

__all__ = ["DISPLAY_ZONE", "babel_locale", "datetime_text", "money"]

# The shop's customers read times in the shop's zone (refundry's first shops are in China).
DISPLAY_ZONE = ZoneInfo("Asia/Shanghai")


def babel_locale(locale: str) -> str:
    """``zh-CN`` (the pages' tag, BCP 47) -> ``zh_CN`` (Babel's identifier)."""
    return locale.replace("-", "_")


def money(amount: int, currency: str, locale: str) -> str:
    """``amount`` minor units of ``currency`` as the locale writes it."""
    digits = get_currency_precision(currency)
    value = Decimal(amount).scaleb(-digits)
    return format_currency(value, currency, locale=babel_locale(locale))


def datetime_text(at: datetime | None, locale: str, *, fmt: str = "medium") -> str:
    """``at`` in the shop's zone, in the locale's ``fmt`` (short | medium | long)."""
    if at is None:
        return ""
    return format_datetime(at, format=fmt, tzinfo=DISPLAY_ZONE, locale=babel_locale(locale))
