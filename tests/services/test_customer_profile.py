"""What the shop tells refundry about a customer: the account's creation time (the risk rules'
account age), contacts, and points / wallet adjustments (issue 12 point 3, issue 14 point 4).
Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from refundry.demo import worked_examples as ex
from refundry.domain.errors import InvalidInput, RefundryError
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ProcessPolicy
from refundry.services.access import Actor
from refundry.services.audit.verify import verify_chain
from refundry.services.customers import adjustments, profile
from refundry.services.customers.risk import assess_customer, risk_features
from refundry.services.errors import Forbidden, NotFound, Unprocessable
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    audit_log,
    customer_adjustments,
    customer_contacts,
    customers,
    ledger_postings,
)

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
POLICY = Policy()
SHOP = Actor("admin", "shop-backend")
CUSTOMER = ex.CUSTOMER


def ingest(engine: Engine, customer: dict[str, Any] | None = None, order_id: str = "o-1") -> None:
    doc: dict[str, Any] = {"order": ex.order(order_id, [ex.line("A", 10000)], 10000)}
    if customer is not None:
        doc["customer"] = customer
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, doc, policy=POLICY, now=NOW)
        uow.commit()


def age(engine: Engine) -> tuple[int | None, int]:
    with UnitOfWork(engine, readonly=True) as uow:
        f = risk_features(uow.conn, CUSTOMER, now=NOW + timedelta(days=1))
    return f.account_age_days, f.known_for_days


def rows(engine: Engine) -> dict[str, int]:
    """Row counts of the tables these use cases write."""
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (audit_log, customer_adjustments, ledger_postings, customer_contacts)
        }


def customer_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(customers).where(customers.c.id == CUSTOMER)).one()


def test_ingest_takes_the_account_creation_time_and_the_risk_rules_read_it(
    engine: Engine,
) -> None:
    ingest(engine, {"account_created_at": "2024-01-01T08:00:00+08:00"})
    assert customer_row(engine).account_created_at == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert age(engine) == ((NOW + timedelta(days=1) - datetime(2024, 1, 1, tzinfo=UTC)).days, 1)
    with UnitOfWork(engine, readonly=True) as uow:
        decision = assess_customer(uow.conn, CUSTOMER, now=NOW, policy=ProcessPolicy())
    assert (decision.decision, decision.matches, decision.not_applied) == ("approve", (), ())


def test_without_it_the_age_is_unknown_and_the_new_account_rule_says_so(engine: Engine) -> None:
    ingest(engine)
    assert age(engine) == (None, 1)
    with UnitOfWork(engine, readonly=True) as uow:
        decision = assess_customer(uow.conn, CUSTOMER, now=NOW, policy=ProcessPolicy())
    assert decision.decision == "approve"
    assert [n.rule for n in decision.not_applied] == ["new_account_large"]


def test_a_later_order_or_an_update_corrects_the_time(engine: Engine) -> None:
    ingest(engine)
    ingest(engine, {"account_created_at": "2026-11-22T04:00:00Z"}, order_id="o-2")
    assert age(engine) == (3, 1)
    done = profile.update_customer(
        engine,
        actor=SHOP,
        customer_id=CUSTOMER,
        changes={
            "account_created_at": "2025-11-24T04:00:00Z",
            "contact": {"phone": "+8613800000001", "channels": ["sms", "in_app"]},
        },
        now=NOW,
    )
    assert done.account_created_at == datetime(2025, 11, 24, 4, 0, tzinfo=UTC)
    assert done.contact is not None
    assert (done.contact.phone, done.contact.channels) == ("+8613800000001", ("sms", "in_app"))
    assert age(engine) == (366, 1)
    with engine.connect() as conn:
        entry = conn.execute(
            select(audit_log.c.actor, audit_log.c.data).where(
                audit_log.c.action == "customer.updated"
            )
        ).one()
        assert verify_chain(conn).ok
    assert entry.actor == "admin:shop-backend"
    assert json.loads(entry.data)["fields"] == ["account_created_at", "contact"]


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"account_created_at": "2026-11-25T04:00:00Z"}, "customer.invalid", "account_created_at"),
        ({"account_created_at": "2026-11-01T04:00:00"}, "customer.invalid", "account_created_at"),
        ({"contact": {"channels": ["pigeon"]}}, "customer.invalid", "contact.channels"),
        ({"tier": "gold"}, "customer.invalid", "tier"),
    ],
)
def test_a_bad_update_is_refused_naming_the_field_and_changes_nothing(
    engine: Engine, changes: dict[str, Any], code: str, field: str
) -> None:
    ingest(engine)
    before, row = rows(engine), customer_row(engine)
    with pytest.raises(InvalidInput) as err:
        profile.update_customer(engine, actor=SHOP, customer_id=CUSTOMER, changes=changes, now=NOW)
    assert (err.value.code, err.value.field) == (code, field)
    assert (rows(engine), customer_row(engine)) == (before, row)


def test_an_update_for_an_unknown_customer_or_by_another_role_is_refused(engine: Engine) -> None:
    ingest(engine)
    before = rows(engine)
    with pytest.raises(NotFound) as err:
        profile.update_customer(
            engine,
            actor=SHOP,
            customer_id="c-nobody",
            changes={"account_created_at": "2025-01-01T00:00:00Z"},
            now=NOW,
        )
    assert err.value.code == "customer.not_found"
    for role in ("customer", "merchant", "agent"):
        with pytest.raises(Forbidden):
            profile.update_customer(
                engine,
                actor=Actor(role, CUSTOMER),
                customer_id=CUSTOMER,
                changes={"account_created_at": "2025-01-01T00:00:00Z"},
                now=NOW,
            )
    assert rows(engine) == before


def test_a_future_creation_time_at_ingest_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidInput) as err:
        ingest(engine, {"account_created_at": "2026-12-01T00:00:00Z"})
    assert (err.value.code, err.value.field) == (
        "snapshot.invalid",
        "customer.account_created_at",
    )


# -- adjustments ---------------------------------------------------------------------------------

GOODWILL = {"kind": "points", "points": 300, "source": {"type": "goodwill", "id": "gw-1"}}


def adjust(engine: Engine, doc: dict[str, Any], key: str = "k-1") -> adjustments.Adjustment:
    return adjustments.post_adjustment(
        engine, actor=SHOP, customer_id=CUSTOMER, doc=doc, idempotency_key=key, now=NOW
    )


def points(engine: Engine) -> int:
    with engine.connect() as conn:
        return balance(conn, "points", CUSTOMER)


def test_an_adjustment_is_one_ledger_entry_with_its_source_and_key(engine: Engine) -> None:
    ingest(engine, {"points_balance": 100})
    done = adjust(engine, {**GOODWILL, "memo": "late parcel"})
    assert (done.created, done.amount, done.balance_after) == (True, 300, 400)
    assert points(engine) == 400
    with engine.connect() as conn:
        legs = conn.execute(
            select(ledger_postings.c.account_id, ledger_postings.c.amount, ledger_postings.c.memo)
            .where(ledger_postings.c.journal_id == f"adjustment:{done.id}")
            .order_by(ledger_postings.c.id)
        ).all()
        row = conn.execute(select(customer_adjustments)).one()
    assert [(a, n) for a, n, _ in legs] == [(f"points:{CUSTOMER}", 300), ("shop/points", -300)]
    assert legs[0].memo == "shop adjustment goodwill:gw-1"
    assert (row.source_type, row.source_id, row.idempotency_key, row.memo) == (
        "goodwill",
        "gw-1",
        "k-1",
        "late parcel",
    )


def test_the_same_key_posts_once_and_another_adjustment_with_it_is_refused(
    engine: Engine,
) -> None:
    ingest(engine)
    first = adjust(engine, GOODWILL)
    before = rows(engine)
    again = adjust(engine, GOODWILL)
    assert (again.id, again.created, again.balance_after) == (first.id, False, 300)
    with pytest.raises(Unprocessable) as err:
        adjust(engine, {**GOODWILL, "points": 301})
    assert err.value.code == "adjustment.key_reused"
    assert rows(engine) == before and points(engine) == 300
    assert adjust(engine, GOODWILL, key="k-2").balance_after == 600  # a new key posts again


@pytest.mark.parametrize(
    ("doc", "key", "code"),
    [
        ({"kind": "points", "points": -101, "source": GOODWILL["source"]}, "k", None),
        ({**GOODWILL, "points": 0}, "k", "adjustment.invalid"),
        ({**GOODWILL, "amount": {"amount": 1, "currency": "CNY"}}, "k", "adjustment.invalid"),
        (
            {
                "kind": "wallet",
                "amount": {"amount": 500, "currency": "USD"},
                "source": {"type": "x", "id": "y"},
            },
            "k",
            "adjustment.currency_mismatch",
        ),
        ({"kind": "wallet", "points": 5, "source": GOODWILL["source"]}, "k", "adjustment.invalid"),
        ({**GOODWILL, "source": {"type": "goodwill"}}, "k", "adjustment.invalid"),
        (GOODWILL, "", "idempotency.key_missing"),
    ],
)
def test_a_refused_adjustment_changes_nothing(
    engine: Engine, doc: dict[str, Any], key: str, code: str | None
) -> None:
    ingest(engine, {"points_balance": 100})
    before = rows(engine)
    with pytest.raises(RefundryError) as err:
        adjust(engine, doc, key=key)
    assert err.value.code == (code or "ledger.insufficient_funds")
    assert rows(engine) == before and points(engine) == 100


def test_a_wallet_adjustment_in_the_orders_currency(engine: Engine) -> None:
    ingest(engine)
    done = adjust(
        engine,
        {
            "kind": "wallet",
            "amount": {"amount": 1500, "currency": "CNY"},
            "source": {"type": "refund_goodwill", "id": "t-9"},
        },
    )
    assert (done.currency, done.balance_after) == ("CNY", 1500)
    taken = adjust(
        engine,
        {
            "kind": "wallet",
            "amount": {"amount": -1500, "currency": "CNY"},
            "source": {"type": "correction", "id": "t-10"},
        },
        key="k-2",
    )
    assert taken.balance_after == 0
    with pytest.raises(Forbidden):
        adjustments.post_adjustment(
            engine,
            actor=Actor("agent", "li"),
            customer_id=CUSTOMER,
            doc=GOODWILL,
            idempotency_key="k-3",
            now=NOW,
        )
    with pytest.raises(NotFound):
        adjustments.post_adjustment(
            engine, actor=SHOP, customer_id="c-nobody", doc=GOODWILL, idempotency_key="k-4", now=NOW
        )
