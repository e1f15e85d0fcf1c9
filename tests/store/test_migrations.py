"""Migrations create exactly the schema of store/tables.py, and 0006 and 0021 backfill what
they add."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.migrate import alembic_config, upgrade
from refundry.store.tables import (
    case_notes,
    cases,
    metadata,
    order_entitlements,
    outbox,
    refund_reversals,
    refunds,
    shipment_events,
    shipments,
    webhook_events,
)
from tests.conftest import _drop_pg, _fresh_pg
from tests.store.test_one_customer_per_transaction import KEYED, OTHER, run_the_shop

POLICY = Policy()
NOW = datetime.fromisoformat(ex.NOW)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('mig') / 'refundry.sqlite'}"
        return
    url = _fresh_pg(request.getfixturevalue("pg_url"))
    try:
        yield url
    finally:
        _drop_pg(url)


def test_migrated_schema_is_the_declared_one(empty_url: str) -> None:
    upgrade(empty_url)
    engine = make_engine(empty_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def _used(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(order_entitlements.c.order_id, order_entitlements.c.entitlement_id).order_by(
                order_entitlements.c.order_id, order_entitlements.c.entitlement_id
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_0006_backfills_the_coupons_orders_used_as_ingest_records_them(empty_url: str) -> None:
    upgrade(empty_url)
    engine = make_engine(empty_url)
    with UnitOfWork(engine) as uow:
        envelope = {"order": ex.COUPON, "customer": {"coupons": ex.COUPON_SNAPSHOT["coupons"]}}
        ingest_order(uow.conn, envelope, policy=POLICY, now=NOW)
        ingest_order(uow.conn, ex.THRESHOLD, policy=POLICY, now=NOW)  # used none
        uow.commit()
    engine.dispose()
    recorded = _used(empty_url)
    coupons = sorted(c["id"] for c in ex.COUPON_SNAPSHOT["coupons"])
    assert recorded == [(ex.COUPON["id"], c) for c in coupons] and coupons
    command.downgrade(alembic_config(empty_url), "0005")  # a database from before 0006
    upgrade(empty_url)
    assert _used(empty_url) == recorded


def _keyed_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Each keyed table's rows as (primary key…, customer_id), in key order."""
    engine = make_engine(url)
    with engine.connect() as conn:
        found = {}
        for name in sorted(KEYED):
            table = metadata.tables[name]
            key = list(table.primary_key.columns)
            rows = conn.execute(select(*key, table.c.customer_id).order_by(*key)).all()
            found[name] = [tuple(r) for r in rows]
    engine.dispose()
    return found


def _write_what_the_run_does_not(engine: Engine) -> None:
    """Rows of the keyed tables the shop's run leaves empty, and rows whose customer only a
    fallback finds: a message and a webhook event whose payload names an order or a case but
    no customer, a system act's message (no customer at all)."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        envelope = {"order": ex.COUPON, "customer": {"coupons": ex.COUPON_SNAPSHOT["coupons"]}}
        ingest_order(conn, envelope, policy=POLICY, now=NOW)  # order_entitlements
        case = conn.execute(select(cases.c.id, cases.c.customer_id)).one()
        refund = conn.execute(
            select(refunds.c.id, refunds.c.order_id, refunds.c.customer_id).where(
                refunds.c.customer_id == OTHER
            )
        ).one()
        mine = {"case_id": case.id, "customer_id": case.customer_id}
        conn.execute(insert(case_notes).values(at=NOW, actor="agent:li", kind="note", **mine))
        conn.execute(
            insert(shipments).values(
                id="sh-1",
                carrier="sf",
                service="pickup",
                payer="merchant",
                status="booked",
                updated_at=NOW,
                **mine,
            )
        )
        conn.execute(
            insert(shipment_events).values(
                event_id="ev-1",
                shipment_id="sh-1",
                status="in_transit",
                at=NOW,
                data="{}",
                customer_id=case.customer_id,
            )
        )
        conn.execute(
            insert(refund_reversals).values(
                refund_id=refund.id,
                order_id=refund.order_id,
                customer_id=refund.customer_id,
                accepted="[]",
                refused="{}",
                history="{}",
                reversal="{}",
                debt=0,
                actor="agent:li",
                created_at=NOW,
            )
        )
        message = {"status": "done", "available_at": NOW, "created_at": NOW}
        conn.execute(
            insert(outbox),
            [
                {
                    "topic": "event",
                    "key": "k-order",
                    "customer_id": refund.customer_id,
                    "payload": f'{{"order_id": "{refund.order_id}"}}',
                    **message,
                },
                {
                    "topic": "event",
                    "key": "k-case",
                    "customer_id": case.customer_id,
                    "payload": f'{{"case_id": "{case.id}"}}',
                    **message,
                },
                {
                    "topic": "event",
                    "key": "k-system",
                    "customer_id": None,
                    "payload": '{"type": "endpoint.added"}',
                    **message,
                },
            ],
        )
        conn.execute(
            insert(webhook_events).values(
                id="msg_case",
                type="case.note_added",
                customer_id=case.customer_id,
                body=f'{{"type": "case.note_added", "data": {{"case_id": "{case.id}"}}}}',
                occurred_at=NOW,
            )
        )
        uow.commit()


def test_0021_backfills_every_rows_customer_from_its_owner(empty_url: str) -> None:
    """Rows written as the code writes them now; the same database taken back to 0020 (the
    columns dropped) and up again: the backfill finds every row's customer again."""
    upgrade(empty_url)
    engine = make_engine(empty_url)
    run_the_shop(engine)
    _write_what_the_run_does_not(engine)
    engine.dispose()
    written = _keyed_rows(empty_url)
    assert [t for t, rows in written.items() if not rows] == []  # every keyed table has rows
    unowned = {t: [r[:-1] for r in rows if r[-1] is None] for t, rows in written.items()}
    assert {t: r for t, r in unowned.items() if r} == {"outbox": [(_system_message(written),)]}
    command.downgrade(alembic_config(empty_url), "0020")
    upgrade(empty_url)
    assert _keyed_rows(empty_url) == written


def _system_message(written: dict[str, list[tuple[object, ...]]]) -> object:
    (found,) = [r[0] for r in written["outbox"] if r[-1] is None]
    return found
