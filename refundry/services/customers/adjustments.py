"""Points and wallet adjustments the shop posts for a customer (a goodwill credit, a
correction, points bought or spent outside an order).

Each adjustment is one ledger journal ``adjustment:<id>`` (the customer's leg and the shop's,
services/refunds/ledger.py) and one ``customer_adjustments`` row naming the shop's source
(``source.type`` / ``source.id``) and its idempotency key, with the audit entry
(``customer.adjusted``), in one transaction. The key is the customer's: the same key with the
same adjustment answers the first one again (nothing is posted twice, however late the retry);
the same key with another adjustment is ``adjustment.key_reused``. An adjustment that would take
a balance below zero is ``ledger.insufficient_funds`` and posts nothing. A wallet adjustment
names its currency, which must be the currency of the customer's orders
(``adjustment.currency_mismatch``). The shop's back end only (admin).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from refundry.domain.errors import InvalidInput
from refundry.domain.reader import Reader
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import NotFound, Unprocessable
from refundry.services.refunds.ledger import balance, post
from refundry.services.uow import UnitOfWork
from refundry.store.tables import customer_adjustments, customers, orders

__all__ = ["KINDS", "Adjustment", "post_adjustment"]

KINDS = ("points", "wallet")
MAX_AMOUNT = 2**53  # far beyond any real balance; keeps sums inside BIGINT


@dataclass(frozen=True, slots=True)
class Adjustment:
    id: str
    customer_id: str
    kind: str  # points | wallet
    amount: int  # points, or minor units of ``currency``; negative takes back
    currency: str | None
    source_type: str
    source_id: str
    memo: str
    idempotency_key: str
    balance_after: int
    created_at: datetime
    created: bool  # False: the key's adjustment was posted before; nothing was written


def _parse(doc: dict[str, Any]) -> dict[str, Any]:
    r = Reader(doc, "", "adjustment.invalid")
    r.only("kind", "points", "amount", "source", "memo")
    kind = r.choice("kind", KINDS)
    currency: str | None = None
    if kind == "points":
        if r.has("amount"):
            r.fail("amount", "a points adjustment gives points, not amount")
        value = r.integer("points", minimum=-MAX_AMOUNT, maximum=MAX_AMOUNT)
    else:
        if r.has("points"):
            r.fail("points", "a wallet adjustment gives amount, not points")
        money = r.child("amount")
        money.only("amount", "currency")
        value = money.integer("amount", minimum=-MAX_AMOUNT, maximum=MAX_AMOUNT)
        currency = money.text("currency", max_length=3)
    if value == 0:
        r.fail("points" if kind == "points" else "amount", "must not be zero")
    source = r.child("source")
    source.only("type", "id")
    return {
        "kind": kind,
        "amount": value,
        "currency": currency,
        "source_type": source.text("type", max_length=32),
        "source_id": source.text("id"),
        "memo": r.text("memo", "", max_length=200),
    }


def _digest(fields: dict[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def post_adjustment(
    engine: Engine,
    *,
    actor: Actor,
    customer_id: str,
    doc: dict[str, Any],
    idempotency_key: str,
    now: datetime,
) -> Adjustment:
    """Post one adjustment (``doc``: kind, points or amount {amount, currency}, source
    {type, id}, memo) under the customer's ``idempotency_key``."""
    access.require(actor, "customer.adjust")
    if not idempotency_key:
        raise InvalidInput(
            "an adjustment needs an Idempotency-Key",
            code="idempotency.key_missing",
            field="Idempotency-Key",
        )
    fields = _parse(doc)
    digest = _digest(fields)
    a = customer_adjustments.c
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        known = conn.execute(
            select(customers.c.id).where(customers.c.id == customer_id).with_for_update()
        ).first()
        if known is None:
            raise NotFound(f"no customer {customer_id!r}", code="customer.not_found")
        before = conn.execute(
            select(customer_adjustments).where(
                a.customer_id == customer_id, a.idempotency_key == idempotency_key
            )
        ).first()
        if before is not None:
            if before.request_hash != digest:
                raise Unprocessable(
                    "this Idempotency-Key was used for another adjustment of the customer",
                    code="adjustment.key_reused",
                )
            return _adjustment(before, created=False)
        _check_postable(conn, customer_id, fields)
        adjustment_id = "adj_" + uuid.uuid4().hex
        after = post(
            conn,
            journal_id=f"adjustment:{adjustment_id}",
            kind=fields["kind"],
            customer_id=customer_id,
            amount=fields["amount"],
            memo=f"shop adjustment {fields['source_type']}:{fields['source_id']}"[:200],
            at=now,
        )
        conn.execute(
            insert(customer_adjustments).values(
                id=adjustment_id,
                customer_id=customer_id,
                **fields,
                idempotency_key=idempotency_key,
                request_hash=digest,
                balance_after=after,
                actor=actor.tag,
                created_at=now,
            )
        )
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=customer_id)
        trail.record(
            "customer.adjusted",
            customer_id=customer_id,
            adjustment_id=adjustment_id,
            kind=fields["kind"],
            amount=fields["amount"],
            source=f"{fields['source_type']}:{fields['source_id']}",
            balance_after=after,
        )
        trail.flush(conn)
        row = conn.execute(select(customer_adjustments).where(a.id == adjustment_id)).one()
        uow.commit()
    return _adjustment(row, created=True)


def _check_postable(conn: Connection, customer_id: str, fields: dict[str, Any]) -> None:
    """A wallet adjustment is in the currency of the customer's orders, and no adjustment
    takes a balance below zero."""
    if fields["currency"] is not None:
        currencies = {
            str(c)
            for (c,) in conn.execute(
                select(orders.c.currency).distinct().where(orders.c.customer_id == customer_id)
            )
        }
        if currencies and currencies != {fields["currency"]}:
            raise InvalidInput(
                f"the customer's wallet is in {', '.join(sorted(currencies))}",
                code="adjustment.currency_mismatch",
                field="amount.currency",
            )
    if balance(conn, fields["kind"], customer_id) + fields["amount"] < 0:
        raise Unprocessable(
            f"the customer's {fields['kind']} balance cannot cover {-fields['amount']}",
            code="ledger.insufficient_funds",
        )


def _adjustment(row: Any, *, created: bool) -> Adjustment:
    return Adjustment(
        id=row.id,
        customer_id=row.customer_id,
        kind=row.kind,
        amount=int(row.amount),
        currency=row.currency,
        source_type=row.source_type,
        source_id=row.source_id,
        memo=row.memo,
        idempotency_key=row.idempotency_key,
        balance_after=int(row.balance_after),
        created_at=row.created_at,
        created=created,
    )
