"""Migrations create exactly the schema of store/tables.py, and 0006 backfills what it adds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.migrate import alembic_config, upgrade
from refundry.store.tables import metadata, order_entitlements
from tests.conftest import _drop_pg, _fresh_pg

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
