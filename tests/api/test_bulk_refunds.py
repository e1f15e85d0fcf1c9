"""Bulk refunds over HTTP (admins), on SQLite and PostgreSQL: a dry run that writes nothing, a
job started (202) and found again (200), its progress while the worker runs it, its CSV report,
and bad selectors refused with their codes, changing nothing."""

from __future__ import annotations

import csv
import io

from refundry.services.bulk.running import BulkRunner
from tests.api.conftest import (
    ADMIN,
    AGENT,
    BOB_ORDER,
    M1,
    NOW,
    World,
    bearer,
    db_snapshot,
    order_doc,
    problem_of,
    snapshot_diff,
)

SHOP = bearer("admin", ADMIN)
RECALL = {"selector": {"sku": "RECALL-1"}, "reason": "quality_issue"}


def _recalled_orders(world: World, n: int = 3) -> None:
    for i in range(n):
        lines = [
            {
                "id": "ln-r",
                "sku": "RECALL-1",
                "title": "R",
                "merchant_id": M1,
                "quantity": 2,
                "unit_price": 4000,
            },
            {
                "id": "ln-k",
                "sku": "KEEP-1",
                "title": "K",
                "merchant_id": M1,
                "quantity": 1,
                "unit_price": 1000,
            },
        ]
        doc = order_doc(f"ord-recall-{i}", f"cust-recall-{i}", lines)
        answer = world.client.post("/v1/orders", headers=SHOP, json={"order": doc})
        assert answer.status_code == 201, answer.text


def test_a_dry_run_answers_the_sums_and_writes_nothing(world: World) -> None:
    _recalled_orders(world)
    before = db_snapshot(world.engine)
    answer = world.client.post("/v1/bulk-refunds", headers=SHOP, json={**RECALL, "dry_run": True})
    assert answer.status_code == 200, answer.text
    summary = answer.json()["dry_run"]
    assert (summary["orders"], summary["refunds"]) == (3, 3)
    assert summary["money"] == {"CNY": {"external": 3 * 8000}}
    assert summary["manual_review"] == [] and summary["refused"] == {}
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


def test_a_job_starts_runs_in_the_worker_and_reports(world: World) -> None:
    _recalled_orders(world)
    started = world.client.post("/v1/bulk-refunds", headers=SHOP, json={**RECALL, "rate": 2})
    assert started.status_code == 202, started.text
    job = started.json()
    assert started.headers["Location"] == f"/v1/bulk-refunds/{job['id']}"
    assert (job["state"], job["total"], job["pending"], job["rate"]) == ("running", 3, 3, 2)
    again = world.client.post("/v1/bulk-refunds", headers=SHOP, json={**RECALL, "rate": 2})
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    runner = BulkRunner()
    assert runner.step(world.engine, now=NOW) == 2  # rate 2: two orders this second
    progress = world.client.get(f"/v1/bulk-refunds/{job['id']}", headers=SHOP).json()
    assert (progress["state"], progress["done"], progress["pending"]) == ("running", 2, 1)
    assert runner.step(world.engine, now=NOW) == 0  # the second's worth is spent: it waits
    BulkRunner().step(world.engine, now=NOW)  # (a fresh pacer: the next second)
    progress = world.client.get(f"/v1/bulk-refunds/{job['id']}", headers=SHOP).json()
    assert (progress["state"], progress["refunded"], progress["pending"]) == ("finished", 3, 0)
    report = world.client.get(f"/v1/bulk-refunds/{job['id']}/report", headers=SHOP)
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(r["order_id"], r["state"], r["total"]) for r in rows] == [
        (f"ord-recall-{i}", "refunded", "8000") for i in range(3)
    ]


def test_orders_named_by_id_record_each_outcome(world: World) -> None:
    _recalled_orders(world, 1)
    body = {
        "selector": {"order_ids": ["ord-recall-0", BOB_ORDER, "ord-nope"]},
        "reason": "merchant_breach",
    }
    job = world.client.post("/v1/bulk-refunds", headers=SHOP, json=body).json()
    BulkRunner().step(world.engine, now=NOW)
    rows = list(
        csv.DictReader(
            io.StringIO(world.client.get(f"/v1/bulk-refunds/{job['id']}/report", headers=SHOP).text)
        )
    )
    assert [(r["order_id"], r["state"], r["code"]) for r in rows] == [
        ("ord-recall-0", "refunded", ""),
        (BOB_ORDER, "skipped", "bulk.units_held_by_case"),  # Bob's open case holds its unit
        ("ord-nope", "refused", "order.not_found"),
    ]


def test_bad_selectors_and_callers_are_refused_and_change_nothing(world: World) -> None:
    _recalled_orders(world, 1)
    before = db_snapshot(world.engine)
    post = world.client.post
    problem_of(
        post("/v1/bulk-refunds", headers=SHOP, json={"selector": {}, "reason": "x"}),
        422,
        "bulk.selector_missing",
        "selector",
    )
    problem_of(
        post(
            "/v1/bulk-refunds",
            headers=SHOP,
            json={"selector": {"paid_from": "yesterday"}, "reason": "quality_issue"},
        ),
        422,
        "bulk.invalid",
        "selector.paid_from",
    )
    problem_of(
        post("/v1/bulk-refunds", headers=SHOP, json={**RECALL, "reason": "bored"}),
        422,
        "bulk.invalid",
        "reason",
    )
    problem_of(
        post(
            "/v1/bulk-refunds", headers=SHOP, json={**RECALL, "policy": {"coupon_reissue_days": -1}}
        ),
        422,
        "policy.invalid",
        "policy.coupon_reissue_days",
    )
    problem_of(
        post(
            "/v1/bulk-refunds",
            headers=SHOP,
            json={"selector": {"sku": "NO-SUCH"}, "reason": "quality_issue"},
        ),
        422,
        "bulk.nothing_selected",
    )
    problem_of(
        post("/v1/bulk-refunds", headers=bearer("agent", AGENT), json=RECALL), 403, "auth.forbidden"
    )
    problem_of(
        world.client.get("/v1/bulk-refunds/bj_nope", headers=SHOP), 404, "bulk.job_not_found"
    )
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


def test_the_worker_runs_the_job_and_its_relay_sends_the_gateway_refunds(world: World) -> None:
    from sqlalchemy import select

    from refundry.services.uow import UnitOfWork
    from refundry.store.tables import outbox
    from refundry.worker import Worker

    _recalled_orders(world)
    job = world.client.post("/v1/bulk-refunds", headers=SHOP, json=RECALL).json()
    runtime = world.app.state.ctx.runtime
    worker = Worker(desk=runtime.desk, relay=runtime.relay(), clock=lambda: NOW, name="w-bulk")
    worker.run_once()
    assert worker.bulk_orders == 3  # one batch: the three orders
    progress = world.client.get(f"/v1/bulk-refunds/{job['id']}", headers=SHOP).json()
    assert (progress["state"], progress["refunded"]) == ("finished", 3)
    worker.run_once()  # the relay goes first in a round: the refunds' gateway calls leave
    assert worker.bulk_orders == 0
    with UnitOfWork(world.engine, readonly=True) as uow:
        sent = uow.conn.execute(
            select(outbox.c.key, outbox.c.status).where(outbox.c.topic == "gateway.refund")
        ).all()
    # the three bulk refunds' card money, and the world's earlier refund of Alice's: all sent
    assert sorted(status for _, status in sent) == ["done"] * 4, sent
