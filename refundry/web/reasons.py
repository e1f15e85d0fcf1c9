"""A plan's reasons in the page's language: the reason the plan wrote in English, read back to
its template and parameters (refundry/domain/reasons.py), then the template's translation
with money written per locale and words translated. English pages show the plan's own text.

The messages are the domain's templates themselves (``%(name)s`` parameters) and the words
below; the zh-CN catalog translates them like the templates' messages (tests/web/test_i18n.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from refundry.domain.reasons import PARAMETERS, TEMPLATES, Said, read_reason

__all__ = ["REQUEST_REASONS", "messages", "reason_in_words"]

# The request's reason codes (the pages' reason macro and the reasons that name them).
REQUEST_REASONS: Final[dict[str, str]] = {
    "quality_issue": "Quality problem",
    "wrong_item": "Wrong item sent",
    "not_received": "Not received",
    "merchant_breach": "Not as described",
    "changed_mind": "Changed my mind",
}
# A threshold campaign's measure: what the kept basket is counted at.
MEASURES: Final[dict[str, str]] = {"list": "list price", "paid": "amount paid"}
_WORDS: Final[dict[str, dict[str, str]]] = {"reason": REQUEST_REASONS, "measure": MEASURES}


def messages() -> set[str]:
    """Every message this module translates."""
    return {*TEMPLATES.values(), *REQUEST_REASONS.values(), *MEASURES.values()}


def reason_in_words(text: str, gettext: Callable[[str], str], money: Callable[[int], str]) -> str:
    """``text`` (a plan's reason) through ``gettext``, amounts written by ``money``; the text
    as it is when no template writes it."""
    said = read_reason(text)
    return text if said is None else _words(said, gettext, money)


def _words(said: Said, gettext: Callable[[str], str], money: Callable[[int], str]) -> str:
    shown: dict[str, str] = {}
    for name, value in said.params.items():
        kind = PARAMETERS[name]
        if isinstance(value, Said):
            shown[name] = _words(value, gettext, money)
        elif kind == "money":
            shown[name] = money(int(value))
        elif kind == "word":
            shown[name] = gettext(_WORDS[name][value])
        else:
            shown[name] = value
    return gettext(TEMPLATES[said.template]) % shown
