"""A bulk batch writes its refunds together (services/bulk/jobs.py, one_order.py): each must
leave the very rows a single apply of the same plan leaves, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from refundry.demo import worked_examples as ex
from refundry.domain.json_text import parse_stored
from refundry.domain.policy import Policy
from refundry.services.audit.chain import SYSTEM_CHAIN
from refundry.services.audit.verify import verify_chain
from refundry.services.bulk.jobs import run_batch, start_job
from refundry.services.bulk.selection import parse_selector
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.uow import UnitOfWork
from refundry.store.tables import bulk_job_orders, metadata, refunds
from tests.services.bulk_world import PAID, order_doc
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


def _bulk_then_single(
    twins: tuple[Engine, Engine], envelopes: list[dict[str, Any]], ids: list[str], refunds_: int
) -> None:
    """One bulk batch over ``ids`` on one twin; on the other, a preview and apply of each plan
    the batch applied, in the batch's order; then both hold the same rows."""
    bulk, single = twins
    for engine in twins:
        with UnitOfWork(engine) as uow:
            for envelope in envelopes:
                ingest_order(uow.conn, envelope, policy=POLICY, now=PAID)
            uow.commit()
    selector, reason = parse_selector({"order_ids": ids}, reason="quality_issue")
    job = start_job(
        bulk, selector=selector, reason=reason, policy=POLICY, rate=0, actor="admin:ops", now=NOW
    ).job
    result = run_batch(bulk, job, size=len(ids), now=NOW)
    assert (result.processed, result.refunds) == (len(ids), refunds_)
    with UnitOfWork(bulk, readonly=True) as uow:
        applied = uow.conn.execute(
            select(bulk_job_orders.c.order_id, refunds.c.id, refunds.c.plan)
            .join(refunds, refunds.c.id == bulk_job_orders.c.refund_id)
            .order_by(bulk_job_orders.c.position)
        ).all()
    assert len(applied) == refunds_
    same_ids: dict[str, str] = {}
    for order_id, refund_id, plan_text in applied:
        request = parse_stored(plan_text)["request"]  # what the job asked of the order
        plan = preview_refund(single, order_id=order_id, request=request, policy=POLICY, now=NOW)
        same_ids[refund_id] = apply_refund(
            single,
            order_id=order_id,
            request=request,
            expected_plan_hash=plan["plan_hash"],
            idempotency_key=f"k-{order_id}",
            actor=f"bulk:{job.id}",
            now=NOW,
            policy=POLICY,
        ).refund_id
    got, expected = _content(bulk, same_ids), _content(single, {})
    assert sum(len(rows) for rows in expected.values()) > 50
    for table in expected:
        assert got[table] == expected[table], table
    for engine in twins:
        with UnitOfWork(engine, readonly=True) as uow:
            assert verify_chain(uow.conn).ok


def test_a_bulk_batch_writes_the_rows_single_applies_of_its_plans_write(
    twins: tuple[Engine, Engine],
) -> None:
    """Card, points and a 满减 campaign; an unknown order refused in the middle of the batch."""
    snapshot = {"points_balance": 5000, "wallet_balance": 0, "locale": "en"}
    envelopes = [
        {"order": order_doc(i, with_points=True, campaign=i % 2 == 0), "customer": snapshot}
        for i in range(4)
    ]
    ids = ["o-00000", "o-missing", "o-00001", "o-00002", "o-00003"]
    _bulk_then_single(twins, envelopes, ids, refunds_=4)


def test_two_orders_of_one_customer_in_a_batch_see_each_other_as_applies_do(
    twins: tuple[Engine, Engine],
) -> None:
    """A cumulative cashback (test_apply's tiers): the second order's plan reads the spend and
    the reward the first one's refund just lowered, in the same batch."""
    tiers = [{"threshold": 80000, "reward": 10000}, {"threshold": 160000, "reward": 30000}]
    campaign = {"id": "CUM", "kind": "cumulative_cashback", "measure": "paid", "tiers": tiers}
    grant = {"id": "R-CUM", "campaign_id": "CUM", "threshold": 160000, "amount": 30000}
    customer = {
        "campaign_spend": {"CUM": 70000},
        "campaign_rewards": [{**grant, "status": "granted"}],
    }
    envelopes = [
        {
            "order": ex.order(
                f"o-cum-{k}", [ex.line(k.upper(), 50000)], 50000, campaigns=[campaign]
            ),
            "customer": customer,
        }
        for k in ("b", "a")
    ]
    _bulk_then_single(twins, envelopes, ["o-cum-a", "o-cum-b"], refunds_=2)
