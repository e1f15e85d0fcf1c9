"""`refundry import` writes a batch's new orders together (services/orders/batch_ingest.py): the
stored state must be the one ``ingest_order`` leaves ingesting the same lines one by one, on
SQLite and on PostgreSQL, and bad lines are still reported by number and code with the good
ones of their batch kept."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from refundry.demo.shop import START, TIERS, _order
from refundry.domain.errors import RefundryError
from refundry.domain.policy import Policy
from refundry.services.audit.verify import verify_chain
from refundry.services.orders.bulk_import import import_lines
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import metadata

POLICY = Policy()
NOW = START + timedelta(days=2)


def _line(rng: random.Random, c: int, k: int, *, rich: bool) -> str:
    """The demo shop's order ``k`` of customer ``c`` with its envelope; ``rich``: paid in part
    from the wallet, with a cumulative cashback, a flash-sale quota, an entitlement used, a
    reward held, a contact and the account's creation time."""
    cid = f"c{c:03d}"
    doc = _order(rng, k, cid, card=f"ali-{cid}-{k}")
    customer: dict[str, Any] = {
        "locale": "en" if c % 2 else "zh-CN",
        "points_balance": 3000,
        "growth_value": 1200,
        "tier_table": TIERS,
        "coupons": [{"id": f"CP-{cid}-{k}", "value": 2000}],
    }
    if rich:
        doc["tenders"][0]["amount"] -= 1500
        doc["tenders"].append({"id": "W", "kind": "wallet", "amount": 1500})
        doc["campaigns"] += [
            {
                "id": "CUM",
                "kind": "cumulative_cashback",
                "measure": "paid",
                "tiers": [{"threshold": 300000, "reward": 10000}],
            },
            {"id": "FLASH", "kind": "participation_quota", "quota_per_customer": 5},
        ]
        doc["benefits"] = [{"id": f"E-FS-{cid}-{k}", "kind": "free_shipping_pass", "lines": []}]
        customer.update(
            wallet_balance=5000,
            campaign_spend={"CUM": 1000},
            quotas_used={"FLASH": 1},
            campaign_rewards=[
                {
                    "id": f"RC-{cid}",
                    "campaign_id": "CUM",
                    "threshold": 300000,
                    "amount": 10000,
                    "status": "pending",
                }
            ],
            contact={"phone": f"+86138{c:08d}", "channels": ["in_app", "sms"][: 1 + k % 2]},
            account_created_at=(START - timedelta(days=30 + k)).isoformat(),
        )
        if k % 2:
            customer["entitlements"] = [{"id": f"E-FS-{cid}-{k}", "kind": "free_shipping_pass"}]
    return json.dumps({"order": doc, "customer": customer}, ensure_ascii=False)


def _lines(first: int, customers: int, later: int = 0) -> list[str]:
    """Orders ``later``, ``later`` + 1… of customers ``first``, ``first`` + 1…"""
    rng = random.Random(first)
    return [
        _line(rng, c, k, rich=c % 3 == 0)
        for c in range(first, first + customers)
        for k in range(later, later + 1 + c % 3)
    ]


def _one_by_one(engine: Engine, lines: list[str]) -> None:
    for text in lines:
        with UnitOfWork(engine) as uow:
            ingest_order(uow.conn, json.loads(text), policy=POLICY, now=NOW)
            uow.commit()


def _content(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(
                (tuple(r) for r in conn.execute(select(t))), key=lambda r: repr(r).encode()
            )
            for t in metadata.sorted_tables
        }


def test_a_batched_import_stores_what_ingesting_one_by_one_stores(
    twins: tuple[Engine, Engine],
) -> None:
    reference, batched = twins
    # the second: known customers and new ones
    first, second = _lines(0, 30), _lines(20, 30, later=3)
    assert len(first) > 50 and any('"wallet"' in line for line in first)
    for lines in (first, second):
        _one_by_one(reference, lines)
        report = import_lines(batched, lines, policy=POLICY, now=NOW, batch=25)
        assert report.bad == []
        assert report.ingested == len(lines)
    expected, got = _content(reference), _content(batched)
    assert got["orders"] and got["audit_log"] and got["customer_contacts"]
    assert got["campaign_spend"] and got["campaign_quotas"] and got["campaign_rewards"]
    for table in expected:
        assert got[table] == expected[table], table
    with UnitOfWork(batched, readonly=True) as uow:
        report_ = verify_chain(uow.conn)
    assert report_.ok and report_.entries == len(got["audit_log"])
    again = import_lines(batched, first, policy=POLICY, now=NOW, batch=25)
    assert (again.ingested, again.already_present, again.bad) == (0, len(first), [])
    assert _content(batched) == got


def test_bad_lines_are_named_and_the_good_ones_of_their_batch_kept(
    twins: tuple[Engine, Engine],
) -> None:
    engine, _ = twins
    good = _lines(0, 6)
    stored = json.loads(good[0])
    import_lines(engine, good[:1], policy=POLICY, now=NOW)
    changed = json.loads(good[0])
    changed["order"]["shipping_fee"] += 1
    changed["order"]["tenders"][0]["amount"] += 1
    inner_changed = json.loads(good[1])
    inner_changed["order"]["shipping_fee"] += 1
    inner_changed["order"]["tenders"][0]["amount"] += 1
    invalid = json.loads(good[2])
    invalid["order"]["lines"][0]["quantity"] = 0
    lines = [
        json.dumps(stored),  # 1: already present
        "{not json",  # 2
        json.dumps(invalid),  # 3
        json.dumps(changed),  # 4: a stored id with other content
        good[1],  # 5
        json.dumps(inner_changed),  # 6: an id of this batch with other content
        good[1],  # 7: the same again: already present
        *good[3:],  # 8…
    ]
    report = import_lines(engine, lines, policy=POLICY, now=NOW, batch=100)
    assert [(b.line, b.code) for b in report.bad] == [
        (2, "input.not_json"),
        (3, report.bad[1].code),
        (4, "order.conflict"),
        (6, "order.conflict"),
    ]
    assert report.bad[1].code.startswith("order.")
    assert report.ingested == 1 + len(good[3:])
    assert report.already_present == 2
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(select(metadata.tables["orders"].c.id))}
    assert ids == {json.loads(g)["order"]["id"] for g in good if g != good[2]}


def test_a_batch_the_database_refuses_is_ingested_line_by_line(
    twins: tuple[Engine, Engine],
) -> None:
    """A wallet paid beyond its balance: the database refuses it (CHECK); the batch is taken
    again line by line, the line named with the database's reason, the others kept."""
    engine, _ = twins
    good = _lines(0, 9)
    rich = next(i for i, g in enumerate(good) if '"wallet"' in g)
    over = json.loads(good[rich])
    over["order"]["tenders"][0]["amount"] -= 10000
    over["order"]["tenders"][-1]["amount"] += 10000  # wallet 11,500 of a 5,000 balance
    lines = [*good[:rich], json.dumps(over), *good[rich + 1 :]]
    report = import_lines(engine, lines, policy=POLICY, now=NOW, batch=100)
    assert [(b.line, b.code) for b in report.bad] == [(rich + 1, "store.constraint_violated")]
    assert report.ingested == len(good) - 1
    with UnitOfWork(engine, readonly=True) as uow:
        assert verify_chain(uow.conn).ok
        stored = {r[0] for r in uow.conn.execute(select(metadata.tables["orders"].c.id))}
    assert len(stored) == len(good) - 1


def test_a_line_is_refused_with_ingest_orders_own_words(
    twins: tuple[Engine, Engine],
) -> None:
    """Lines orjson reads otherwise than json.loads (an integer beyond 64 bits, a lone
    surrogate, a number with an exponent) are refused as ``ingest_order`` refuses json.loads's
    reading of them."""
    engine, _ = twins
    base = _lines(0, 1)[0]
    huge = base.replace('"shipping_fee": 1000', '"shipping_fee": 184467440737095516160')
    surrogate = base.replace('"title": "', '"title": "\\ud800', 1)
    exponent = base.replace('"shipping_fee": 1000', '"shipping_fee": 1e3')
    lines = [huge, surrogate, exponent]
    assert len(set(lines)) == 3 and base not in lines
    expected = []
    for number, text in enumerate(lines, start=1):
        with UnitOfWork(engine) as uow, pytest.raises(RefundryError) as refused:
            ingest_order(uow.conn, json.loads(text), policy=POLICY, now=NOW)
        exc = refused.value
        where = f" at {exc.field}" if exc.field else ""
        expected.append((number, exc.code, f"{exc.message}{where}"))
    report = import_lines(engine, lines, policy=POLICY, now=NOW)
    assert [(b.line, b.code, b.message) for b in report.bad] == expected
    assert "at most" in expected[0][2] and report.ingested == 0
