"""The pages' words and numbers: every message of the templates (and of a plan's reasons,
refundry/web/reasons.py) has its zh-CN translation, with the same placeholders, and money and
dates are written per locale by Babel (CLDR)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import refundry.web
from refundry.settings import Settings, SettingsError, load_settings
from refundry.web.formats import datetime_text, money, number
from refundry.web.reasons import messages as reason_messages

WEB = Path(refundry.web.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _template_messages() -> set[str]:
    found = extract_from_dir(
        WEB / "templates",
        method_map=[("**.html", "jinja2")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}},
    )
    return {str(message) for _file, _line, message, _comments, _context in found}


def test_every_template_message_is_translated_to_zh_cn() -> None:
    with (WEB / "locale/zh_CN/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f)
    translated = {m.id: m.string for m in catalog if m.id and m.string}
    wanted = _template_messages() | reason_messages()
    assert len(wanted) > 100
    assert sorted(wanted - translated.keys()) == []
    assert sorted(translated.keys() - wanted) == []  # no message left over from old templates
    for source, text in translated.items():
        assert set(PLACEHOLDER.findall(str(source))) == set(PLACEHOLDER.findall(str(text)))


def test_money_is_written_as_each_locale_writes_its_currency() -> None:
    assert money(123450, "CNY", "zh-CN") == "¥1,234.50"
    assert money(123450, "CNY", "en") == "CN¥1,234.50"
    assert money(1235, "JPY", "en") == "¥1,235"  # no minor unit: CLDR says 0 digits
    assert money(1234, "KWD", "en").endswith("1.234")  # three digits
    assert money(-5, "USD", "en") == "-$0.05"


def test_points_are_grouped_as_each_locale_groups_digits() -> None:
    assert number(1250, "en") == "1,250"
    assert number(1250, "zh-CN") == "1,250"
    assert number(1234567, "en") == "1,234,567"
    assert number(7, "zh-CN") == "7"


def test_dates_are_shown_in_the_shops_zone_per_locale() -> None:
    at = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    shanghai = ZoneInfo(Settings().display_timezone)  # the default: the first shops' zone
    assert datetime_text(at, "zh-CN", shanghai) == "2026年11月24日 12:00:00"
    assert datetime_text(at, "en", shanghai) == "Nov 24, 2026, 12:00:00\u202fPM"
    assert datetime_text(at, "en", ZoneInfo("Europe/Paris")) == "Nov 24, 2026, 5:00:00\u202fAM"


def test_a_shop_names_its_zone_and_a_wrong_name_is_refused_by_name() -> None:
    assert Settings(display_timezone="Europe/Paris").display_timezone == "Europe/Paris"
    with pytest.raises(SettingsError) as err:
        load_settings({"display_timezone": "Mars/Olympus"})
    assert err.value.field == "display_timezone"
    assert "IANA time zone" in err.value.message
