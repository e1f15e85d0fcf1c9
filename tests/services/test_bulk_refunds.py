"""Bulk refunds on SQLite and PostgreSQL: selection, a job run in batches, refusals recorded
and the job going on, open cases left to their case, the dry run, the CSV report."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from refundry.domain.errors import InvalidInput
from refundry.domain.policy import Policy
from refundry.services.audit.verify import verify_chain
from refundry.services.bulk.dry_run import dry_run
from refundry.services.bulk.jobs import JobStart, read_job, run_batch, start_job
from refundry.services.bulk.report import write_report
from refundry.services.bulk.running import Pacer, run_job
from refundry.services.bulk.selection import parse_selector
from refundry.services.errors import NotFound, Unprocessable
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, bulk_job_orders, order_lines, outbox, refunds
from tests.services.bulk_world import PAID, ingest, order_doc

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def outcomes(engine: Engine, job_id: str) -> dict[str, tuple[str, str | None]]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(
                bulk_job_orders.c.order_id, bulk_job_orders.c.state, bulk_job_orders.c.code
            ).where(bulk_job_orders.c.job_id == job_id)
        )
        return {r.order_id: (r.state, r.code) for r in rows}


def refunded_units(engine: Engine) -> dict[tuple[str, str], int]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(order_lines.c.order_id, order_lines.c.line_id, order_lines.c.refunded_qty)
        )
        return {(r.order_id, r.line_id): r.refunded_qty for r in rows}


def start(
    engine: Engine, selector: dict[str, object], reason: str = "quality_issue", **kw: int
) -> JobStart:
    sel, why = parse_selector(selector, reason=reason)
    return start_job(
        engine,
        selector=sel,
        reason=why,
        policy=Policy(),
        rate=kw.get("rate", 0),
        actor="admin:ops",
        now=NOW,
    )


def test_a_sku_recall_refunds_only_that_sku_and_records_each_refusal(engine: Engine) -> None:
    ingest(engine, [order_doc(i) for i in range(5)], now=PAID)
    # o-00001 refunded in full by an earlier job (every line): a SKU recall does not select it
    first = start(engine, {"order_ids": ["o-00001"]})
    run_job(engine, first.job.id, clock=clock)
    job = start(engine, {"sku": "RECALLED"}).job
    assert job.total == 4
    done = run_job(engine, job.id, clock=clock, batch=3)
    assert done.state == "finished"
    assert (done.done, done.refunded, done.skipped, done.refused) == (4, 4, 0, 0)
    units = refunded_units(engine)
    assert all(units[(f"o-{i:05d}", "R")] == 2 for i in range(5))
    assert all(units[(f"o-{i:05d}", "K")] == (1 if i == 1 else 0) for i in range(5))


def test_refusals_are_recorded_with_their_code_and_the_job_goes_on(engine: Engine) -> None:
    ingest(engine, [order_doc(i) for i in range(4)], now=PAID)
    ids = ["o-00000", "o-missing", "o-00002", "o-00003"]
    job = start(engine, {"order_ids": ids}).job
    assert job.total == 4
    done = run_job(engine, job.id, clock=clock, batch=10)
    assert outcomes(engine, job.id) == {
        "o-00000": ("refunded", None),
        "o-missing": ("refused", "order.not_found"),
        "o-00002": ("refunded", None),
        "o-00003": ("refunded", None),
    }
    assert (done.done, done.refunded, done.refused) == (4, 3, 1)
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(refunds)).scalar_one() == 3
        gateway = uow.conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.topic == "gateway.refund")
        ).scalar_one()
    assert gateway == 3  # each refund's card money queued for the relay, once


def test_the_same_command_finds_its_job_and_refunds_nothing_twice(engine: Engine) -> None:
    ingest(engine, [order_doc(i) for i in range(3)], now=PAID)
    job = start(engine, {"merchant": "m-2"}).job
    run_batch(engine, job, size=1, now=NOW)
    again = start(engine, {"merchant": "m-2"})
    assert not again.created and again.job.id == job.id and again.job.done == 1
    run_job(engine, job.id, clock=clock)
    run_job(engine, job.id, clock=clock)  # finished: nothing more happens
    assert read_job(engine, job.id).refunded == 3
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(refunds)).scalar_one() == 3
    units = refunded_units(engine)
    assert [units[(f"o-{i:05d}", "K")] for i in range(3)] == [1, 1, 1]
    assert [units[(f"o-{i:05d}", "R")] for i in range(3)] == [0, 0, 0]


def test_campaign_and_time_window_select_together(engine: Engine) -> None:
    docs = [order_doc(i, campaign=i % 2 == 0) for i in range(6)]
    ingest(engine, docs, now=PAID)
    job = start(
        engine,
        {
            "campaign": "C-FLASH",
            "paid_from": (PAID + timedelta(hours=1)).isoformat(),
            "paid_until": (PAID + timedelta(hours=5)).isoformat(),
        },
        reason="merchant_breach",
    ).job
    run_job(engine, job.id, clock=clock)
    assert sorted(outcomes(engine, job.id)) == ["o-00002", "o-00004"]


def test_the_dry_run_adds_up_the_plans_and_writes_nothing(engine: Engine) -> None:
    ingest(engine, [order_doc(i, with_points=True) for i in range(3)], now=PAID)
    sel, why = parse_selector({"sku": "RECALLED"}, reason="quality_issue")
    summary = dry_run(engine, selector=sel, reason=why, policy=Policy(), now=NOW)
    assert summary.orders == 3 and summary.refunds == 3
    # each order: 20000 of 25000 list, paid 24000 card + 1000 points -> 19200 card, 800 points
    assert summary.money == {"CNY": {"external": 3 * 19200, "points": 3 * 800}}
    assert summary.total == {"CNY": 3 * 20000}
    assert summary.points == {"returned": 3 * 800}
    assert summary.manual_review == [] and summary.refused == {}
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(refunds)).scalar_one() == 0


def test_bad_selectors_are_refused_with_their_codes() -> None:
    with pytest.raises(InvalidInput) as missing:
        parse_selector({}, reason="quality_issue")
    assert missing.value.code == "bulk.selector_missing"
    for bad, where in [
        ({"sku": ""}, "selector.sku"),
        (
            {"paid_from": "2026-11-02T00:00:00+00:00", "paid_until": "2026-11-01T00:00:00+00:00"},
            "selector.paid_until",
        ),
        ({"paid_from": "2026-11-02"}, "selector.paid_from"),
        ({"order_ids": ["a", "a"]}, "selector.order_ids"),
        ({"shop": "x"}, "selector.shop"),
    ]:
        with pytest.raises(InvalidInput) as err:
            parse_selector(bad, reason="quality_issue")
        assert (err.value.code, err.value.field) == ("bulk.invalid", where), bad
    with pytest.raises(InvalidInput) as reason:
        parse_selector({"sku": "X"}, reason="because")
    assert (reason.value.code, reason.value.field) == ("bulk.invalid", "reason")


def test_nothing_selected_stores_no_job_and_an_unknown_job_is_not_found(engine: Engine) -> None:
    ingest(engine, [order_doc(0)], now=PAID)
    with pytest.raises(Unprocessable) as err:
        start(engine, {"sku": "NO-SUCH-SKU"})
    assert err.value.code == "bulk.nothing_selected"
    with pytest.raises(NotFound) as missing:
        read_job(engine, "bj_nope")
    assert missing.value.code == "bulk.job_not_found"


def test_the_csv_report_has_a_row_per_order(engine: Engine) -> None:
    ingest(engine, [order_doc(i) for i in range(2)], now=PAID)
    job = start(engine, {"order_ids": ["o-00001", "o-x", "o-00000"]}).job
    run_job(engine, job.id, clock=clock)
    out = io.StringIO()
    assert write_report(engine, job.id, out) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["order_id"], r["state"], r["code"]) for r in rows] == [
        ("o-00001", "refunded", ""),
        ("o-x", "refused", "order.not_found"),
        ("o-00000", "refunded", ""),
    ]
    assert rows[0]["total"] == "25000" and rows[0]["currency"] == "CNY"
    assert rows[0]["refund_id"].startswith("rf_")


def test_the_pacer_caps_refunds_per_second() -> None:
    t = [100.0]
    pacer = Pacer(rate=50, monotonic=lambda: t[0])
    assert pacer.batch_size(200) == 50
    assert pacer.wait() == 0.0
    pacer.count(50)
    assert pacer.wait() == pytest.approx(1.0)
    t[0] += 0.4
    assert pacer.wait() == pytest.approx(0.6)
    assert Pacer(rate=0).batch_size(200) == 200


def test_units_an_open_case_holds_are_left_to_that_case(engine: Engine) -> None:
    from refundry.domain.process_policy import ExpressPolicy, IdentityPolicy, ProcessPolicy
    from refundry.services.cases.opening import CaseDesk, open_case
    from refundry.services.cases.process import Actor

    ingest(engine, [order_doc(i) for i in range(3)], now=PAID)
    waits = ProcessPolicy(
        identity=IdentityPolicy(otp_above_amount=10**12),
        review_rules=(),
        express=ExpressPolicy(enabled=False),
    )
    desk = CaseDesk(engine, Policy(), waits)
    # o-00000: a case holds 1 of the 2 recalled units; o-00001: a case holds both.
    for order_id, quantity in (("o-00000", 1), ("o-00001", 2)):
        opened = open_case(
            desk,
            actor=Actor("customer", "c-" + order_id[2:]),
            now=NOW - timedelta(days=1),
            request={
                "order_id": order_id,
                "reason": "quality_issue",
                "kind": "refund_only",
                "lines": [{"line_id": "R", "quantity": quantity}],
            },
        )
        assert opened.state in ("requested", "under_review")
    sel, why = parse_selector({"sku": "RECALLED"}, reason="quality_issue")
    summary = dry_run(engine, selector=sel, reason=why, policy=Policy(), now=NOW)
    assert summary.held_by_case == [("o-00000", 1)]  # o-00001: all held, refused below
    assert summary.refused == {"bulk.units_held_by_case": ["o-00001"]}
    assert summary.refunds == 2
    job = start(engine, {"sku": "RECALLED"}).job
    done = run_job(engine, job.id, clock=clock)
    assert outcomes(engine, job.id) == {
        "o-00000": ("refunded", None),
        "o-00001": ("skipped", "bulk.units_held_by_case"),
        "o-00002": ("refunded", None),
    }
    assert (done.refunded, done.skipped) == (2, 1)
    units = refunded_units(engine)
    assert [units[(f"o-{i:05d}", "R")] for i in range(3)] == [1, 0, 2]
    with UnitOfWork(engine, readonly=True) as uow:
        held = uow.conn.execute(
            select(bulk_job_orders.c.held_by_case).where(bulk_job_orders.c.order_id == "o-00000")
        ).scalar_one()
    assert held == 1


def test_a_refund_failing_mid_write_rolls_back_alone(engine: Engine) -> None:
    """The store refuses o-00001's refund row after its units were taken (a trigger standing in
    for any constraint): that order's writes are undone, the batch's other refunds stand."""
    from sqlalchemy import text

    ingest(engine, [order_doc(i) for i in range(3)], now=PAID)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER no_refund BEFORE INSERT ON refunds "
                    "WHEN NEW.order_id = 'o-00001' BEGIN SELECT RAISE(ABORT, 'no refund'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION no_refund() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.order_id = 'o-00001' THEN RAISE EXCEPTION 'no refund' "
                    "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER no_refund BEFORE INSERT ON refunds "
                    "FOR EACH ROW EXECUTE FUNCTION no_refund()"
                )
            )
    job = start(engine, {"sku": "RECALLED"}).job
    done = run_job(engine, job.id, clock=clock, batch=10)
    assert outcomes(engine, job.id)["o-00001"][0:2] == ("refused", "store.constraint_violated")
    assert (done.refunded, done.refused) == (2, 1)
    units = refunded_units(engine)
    assert [units[(f"o-{i:05d}", "R")] for i in range(3)] == [2, 0, 2]  # o-00001's undone
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(refunds)).scalar_one() == 2
        gateway = uow.conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.topic == "gateway.refund")
        ).scalar_one()
    assert gateway == 2
    with UnitOfWork(engine, readonly=True) as uow:
        assert verify_chain(uow.conn).ok  # the batch's entries, one flush, none of o-00001's
        orders_audited = set(
            uow.conn.execute(select(audit_log.c.order_id).where(audit_log.c.actor.like("bulk:%")))
            .scalars()
            .all()
        )
    assert orders_audited == {"o-00000", "o-00002"}


def test_two_runners_of_one_job_at_once_refund_each_order_once(engine: Engine) -> None:
    """The worker and a CLI on the same job at the same time: each batch claims its orders
    (PostgreSQL: their rows locked as read, the second runner passing over what the first
    settled; SQLite: one writer at a time), so every order is refunded exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    ingest(engine, [order_doc(i) for i in range(30)], now=PAID)
    job = start(engine, {"sku": "RECALLED"}).job
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(run_job, engine, job.id, clock=clock, batch=4) for _ in range(2)]
        finished = [run.result() for run in runs]
    assert all(f.state == "finished" for f in finished)
    done = read_job(engine, job.id)
    assert (done.done, done.refunded, done.refused, done.skipped) == (30, 30, 0, 0)
    assert set(outcomes(engine, job.id).values()) == {("refunded", None)}
    units = refunded_units(engine)
    assert [units[(f"o-{i:05d}", "R")] for i in range(30)] == [2] * 30
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(refunds)).scalar_one() == 30
        assert verify_chain(uow.conn).ok
