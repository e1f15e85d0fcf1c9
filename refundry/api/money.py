"""Money in the API: one shape, ``{"amount": <integer minor units>, "currency": "<ISO 4217>"}``.

Every answer carries money as ``Money``, every request that takes money as ``MoneyInput`` (or
``SignedMoneyInput`` where a negative amount takes back). The services' read models keep money
as an integer beside their document's currency (an order's, a case's); a view field typed
``MoneyOut`` takes that integer and pairs it with the currency the route validates it with:

    OrderView.model_validate(order, from_attributes=True, context=money_context(order.currency))

A ``MoneyOut`` field validated without a currency is a programming error and fails loudly.
The plan document (a preview's, an applied refund's effects) is the exception docs/api.md
names: it is the document ``refundry plan`` prints and hashes, integer minor units under its
one top-level ``currency``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from refundry.api.fields import OneLine
from refundry.domain.reader import MAX_INTEGER

__all__ = ["Money", "MoneyInput", "MoneyOut", "SignedMoneyInput", "money_context"]

_CURRENCY = "currency"


class Money(BaseModel):
    """Money: integer minor units with the ISO 4217 currency (null only for a coupon of a
    customer refundry has seen no order of, so it does not know the shop's currency)."""

    model_config = ConfigDict(extra="forbid")
    amount: int
    currency: str | None


def money_context(currency: str | None) -> dict[str, Any]:
    """The validation context that pairs a view's ``MoneyOut`` integers with ``currency``."""
    return {_CURRENCY: currency}


def _from_minor(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        context = info.context
        if not isinstance(context, dict) or _CURRENCY not in context:
            raise ValueError("money validated without money_context(currency)")
        return {"amount": value, "currency": context[_CURRENCY]}
    return value


# A view's money: an integer from the services, answered as Money in the context's currency.
MoneyOut = Annotated[Money, BeforeValidator(_from_minor)]


class MoneyInput(BaseModel):
    """Money a request moves: a positive integer of minor units with the ISO 4217 currency."""

    model_config = ConfigDict(extra="forbid")
    amount: int = Field(strict=True, ge=1, le=MAX_INTEGER)
    currency: Annotated[OneLine, Field(min_length=3, max_length=3)]


class SignedMoneyInput(BaseModel):
    """Money a request posts to a ledger: negative takes back."""

    model_config = ConfigDict(extra="forbid")
    amount: int = Field(strict=True, ge=-MAX_INTEGER, le=MAX_INTEGER, description="minor units")
    currency: Annotated[OneLine, Field(min_length=3, max_length=3)]
