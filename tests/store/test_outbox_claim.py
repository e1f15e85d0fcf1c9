"""The relay's claim walks the pending messages in written order through the outbox's partial
indexes (migration 0023) instead of reading every due message and sorting them, or walking
every message in id order: with a recall of 100,000 refunds queued (900,000 messages) each claim
read them all, and the relay fell from ~400 to ~85 refunds/s on SQLite and ~280 to ~190 on
PostgreSQL. Checked by each database's own plan of the statements the claim runs, on a queue
whose oldest messages are done (as they are while a recall drains)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, update

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.services.outbox.messages import enqueue
from refundry.services.uow import UnitOfWork
from refundry.store.tables import outbox
from tests.tools import runtime_for

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)


def test_the_claim_walks_a_partial_index_in_written_order(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        for i, topic in enumerate(["gateway.refund", "notify", "event", "notify"] * 500):
            enqueue(uow.conn, topic=topic, key=f"k-{i}", at=NOW, payload={"customer_id": "c-1"})
        uow.conn.execute(update(outbox).where(outbox.c.id <= 1900).values(status="done"))
        uow.commit()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE outbox" if engine.dialect.name == "postgresql" else "ANALYZE")
        conn.commit()
    claims: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, *args: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT") and "FROM outbox" in sql:
            claims.append((sql, params))

    clock = ManualClock(NOW)
    relay = runtime_for(engine, clock=clock, gateway=SandboxGateway(clock=clock)).relay()
    event.listen(engine, "before_cursor_execute", record)
    try:
        claimed = relay._claim(50)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # the 25 pending gateway refunds and 50 of the 75 other pending messages
    assert min(r.id for r in claimed) > 1900 and len(claimed) == 25 + 50
    assert len(claims) == 2  # the gateway refunds, the other messages
    with engine.connect() as conn:
        driver = conn.connection.dbapi_connection
        assert driver is not None
        for sql, params in claims:
            if engine.dialect.name == "sqlite":
                rows = driver.execute("EXPLAIN QUERY PLAN " + sql, params)
                plan = " / ".join(r[3] for r in rows)
                assert "TEMP B-TREE" not in plan, plan  # no sort of every due message
            else:
                with driver.cursor() as cur:
                    # 2,000 rows fit a page or two: the table's scan would win here; at a
                    # recall's size the choice is between the indexes, which this asks for
                    cur.execute("SET enable_seqscan = off")
                    cur.execute("SET enable_bitmapscan = off")
                    cur.execute("EXPLAIN " + sql, params)
                    plan = " / ".join(r[0] for r in cur.fetchall())
                assert "Sort" not in plan and "pk_outbox" not in plan, plan
            assert "ix_outbox_money" in plan or "ix_outbox_pending" in plan, plan
