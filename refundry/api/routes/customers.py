"""Customers as the shop describes them (the shop's back end: admin): the account's creation
time at the shop (what the risk rules' account age reads), contacts and notification
preferences, and points / wallet adjustments posted by the shop.

``PATCH /v1/customers/{id}`` changes the fields sent (services/customers/profile.py);
``POST /v1/customers/{id}/adjustments`` posts one ledger entry under the request's
``Idempotency-Key`` (required: services/customers/adjustments.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Response
from pydantic import AwareDatetime, BaseModel, Field

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import FreeText, Id, OneLine
from refundry.api.money import Money, SignedMoneyInput
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import Body, problems
from refundry.services.customers import adjustments, profile

__all__ = ["router"]

router = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=OneHopRoute)

CustomerId = Annotated[Id, Path()]


class Contact(Body):
    phone: Annotated[OneLine, Field(max_length=32)] | None = None
    email: Annotated[OneLine, Field(max_length=200)] | None = None
    channels: list[Literal["in_app", "sms", "email"]] = Field(
        default=["in_app"], description="notification preferences"
    )


class CustomerUpdate(Body):
    account_created_at: AwareDatetime | None = Field(
        default=None,
        description="when the customer's account was created at the shop (RFC 3339); the risk "
        "rules' account age",
    )
    contact: Contact | None = None
    locale: Annotated[OneLine, Field(min_length=1, max_length=16)] | None = None


class ContactView(BaseModel):
    phone: str | None
    email: str | None
    channels: list[str]


class CustomerView(BaseModel):
    id: str
    locale: str
    account_created_at: datetime | None  # null: the shop never sent it (account age unknown)
    first_seen_at: datetime  # when refundry first ingested an order of the customer
    contact: ContactView | None


class Source(Body):
    type: Annotated[OneLine, Field(min_length=1, max_length=32)]
    id: Id


class AdjustmentBody(Body):
    kind: Literal["points", "wallet"]
    points: int | None = Field(default=None, description="points adjustments: whole points")
    amount: SignedMoneyInput | None = Field(default=None, description="wallet adjustments")
    source: Source = Field(description="what at the shop caused it (a goodwill ticket, …)")
    memo: Annotated[FreeText, Field(max_length=200)] = ""


class AdjustmentView(BaseModel):
    id: str
    customer_id: str
    kind: str
    points: int | None
    amount: Money | None
    source: dict[str, str]
    memo: str
    idempotency_key: str
    points_after: int | None  # a points adjustment: the customer's points after it
    wallet_after: Money | None  # a wallet adjustment: the wallet's balance after it
    created_at: datetime


def _view(p: profile.CustomerProfile) -> CustomerView:
    return CustomerView.model_validate(p, from_attributes=True)


@router.get("/{customer_id}", response_model=CustomerView, responses=problems(401, 403, 404, 422))
def get_customer(customer_id: CustomerId, actor: ActorDep, ctx: ContextDep) -> CustomerView:
    """The customer as the shop described it (admin)."""
    return _view(profile.read_profile(ctx.engine, actor=actor, customer_id=customer_id))


@router.patch("/{customer_id}", response_model=CustomerView, responses=problems(401, 403, 404, 422))
def update_customer(
    customer_id: CustomerId, body: CustomerUpdate, actor: ActorDep, ctx: ContextDep
) -> CustomerView:
    """Change the fields sent (admin: the shop's back end); a field left out stays."""
    changes = body.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    done = profile.update_customer(
        ctx.engine, actor=actor, customer_id=customer_id, changes=changes, now=ctx.now()
    )
    return _view(done)


@router.post(
    "/{customer_id}/adjustments",
    status_code=201,
    response_model=AdjustmentView,
    responses={
        200: {"model": AdjustmentView, "description": "posted before with this key"},
        **problems(401, 403, 404, 422),
    },
)
def post_adjustment(
    customer_id: CustomerId,
    body: AdjustmentBody,
    actor: ActorDep,
    ctx: ContextDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description="required here")
    ] = None,
) -> AdjustmentView:
    """Post a points or wallet adjustment (admin): one ledger entry, once per key."""
    done = adjustments.post_adjustment(
        ctx.engine,
        actor=actor,
        customer_id=customer_id,
        doc=body.model_dump(mode="json", exclude_none=True),
        idempotency_key=idempotency_key or "",
        now=ctx.now(),
    )
    if not done.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/customers/{quote(customer_id, safe='')}"
    wallet = done.kind == "wallet"
    return AdjustmentView(
        id=done.id,
        customer_id=done.customer_id,
        kind=done.kind,
        points=done.amount if done.kind == "points" else None,
        amount=Money(amount=done.amount, currency=done.currency) if wallet else None,
        source={"type": done.source_type, "id": done.source_id},
        memo=done.memo,
        idempotency_key=done.idempotency_key,
        points_after=None if wallet else done.balance_after,
        wallet_after=Money(amount=done.balance_after, currency=done.currency) if wallet else None,
        created_at=done.created_at,
    )
