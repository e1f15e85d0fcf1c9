"""A bulk batch writes its refunds together (services/bulk/jobs.py, one_order.py): each must
leave the very rows a single apply of the same plan leaves, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from refundry.domain.policy import Policy
from refundry.services.audit.chain import SYSTEM_CHAIN
from refundry.services.audit.verify import verify_chain
from refundry.services.bulk.jobs import run_batch, start_job
from refundry.services.bulk.selection import parse_selector
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.uow import UnitOfWork
from refundry.store.tables import bulk_job_orders, metadata
from tests.services.bulk_world import PAID, ingest, order_doc
from tests.services.test_bulk_refunds import NOW

POLICY = Policy()
# Rows only one of the two ways writes: the job's own, the apply's idempotency key.
ONE_WAY_ONLY = {"bulk_jobs", "bulk_job_orders", "idempotency_keys"}
# Signatures cover the refund id, which is random: each side's chains are verified instead.
SIGNED = {"hash", "prev_hash"}


def _content(engine: Engine, same_ids: dict[str, str]) -> dict[str, list[str]]:
    """Every row of every table both ways write, as text, with ``same_ids``' keys replaced by
    their values; the system chain (the job's own entries) left out."""
    content: dict[str, list[str]] = {}
    with UnitOfWork(engine, readonly=True) as uow:
        for table in metadata.sorted_tables:
            if table.name in ONE_WAY_ONLY:
                continue
            columns = [c for c in table.c if c.name not in SIGNED]
            rows = []
            for row in uow.conn.execute(select(*columns)):
                if "chain" in row._fields and row.chain == SYSTEM_CHAIN:
                    continue
                text = repr(tuple(row))
                for ours, theirs in same_ids.items():
                    text = text.replace(ours, theirs)
                rows.append(text)
            content[table.name] = sorted(rows)
    return content


def test_a_bulk_batch_writes_the_rows_single_applies_of_its_plans_write(
    twins: tuple[Engine, Engine],
) -> None:
    bulk, single = twins
    docs = [order_doc(i, with_points=True, campaign=i % 2 == 0) for i in range(4)]
    for engine in twins:
        ingest(engine, docs, now=PAID)
    ids = ["o-00000", "o-missing", "o-00001", "o-00002", "o-00003"]
    selector, reason = parse_selector({"order_ids": ids}, reason="quality_issue")
    job = start_job(
        bulk, selector=selector, reason=reason, policy=POLICY, rate=0, actor="admin:ops", now=NOW
    ).job
    result = run_batch(bulk, job, size=10, now=NOW)  # one batch, one refusal in it
    assert (result.processed, result.refunds) == (5, 4)
    with UnitOfWork(bulk, readonly=True) as uow:
        refund_ids = dict(
            uow.conn.execute(
                select(bulk_job_orders.c.order_id, bulk_job_orders.c.refund_id).where(
                    bulk_job_orders.c.refund_id.is_not(None)
                )
            ).all()
        )
    same_ids: dict[str, str] = {}
    for order_id in ids[:1] + ids[2:]:  # in the job's order, each as the job asked it
        request: dict[str, Any] = {
            "order_id": order_id,
            "reason": "quality_issue",
            "kind": "refund_only",
            "lines": [{"line_id": "K", "quantity": 1}, {"line_id": "R", "quantity": 2}],
        }
        plan = preview_refund(single, order_id=order_id, request=request, policy=POLICY, now=NOW)
        applied = apply_refund(
            single,
            order_id=order_id,
            request=request,
            expected_plan_hash=plan["plan_hash"],
            idempotency_key=f"k-{order_id}",
            actor=f"bulk:{job.id}",
            now=NOW,
            policy=POLICY,
        )
        same_ids[refund_ids[order_id]] = applied.refund_id
    got, expected = _content(bulk, same_ids), _content(single, {})
    assert sum(len(rows) for rows in expected.values()) > 100
    for table in expected:
        assert got[table] == expected[table], table
    for engine in twins:
        with UnitOfWork(engine, readonly=True) as uow:
            assert verify_chain(uow.conn).ok
