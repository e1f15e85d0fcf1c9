"""The prebuilt multi-row statements of the apply path and the one-round-trip plan-state read."""

from __future__ import annotations

from sqlalchemy import Engine, select

from refundry.demo import worked_examples as ex
from refundry.services.refunds.apply import _add_tenders_stmt, _take_units_stmt
from refundry.services.refunds.state import load_plan_inputs
from refundry.services.uow import UnitOfWork
from refundry.store.tables import order_lines, order_tenders
from tests.services.test_apply import POLICY, apply, ingest


def _lines(engine: Engine, order_id: str) -> dict[str, int]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(order_lines.c.line_id, order_lines.c.refunded_qty).where(
                order_lines.c.order_id == order_id
            )
        )
        return {r.line_id: r.refunded_qty for r in rows}


def test_take_units_moves_every_line_or_reports_the_stale_one(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    order_id = ex.THRESHOLD["id"]
    before = _lines(engine, order_id)
    ids = sorted(before)[:2]
    params: dict[str, object] = {"b_order_id": order_id}
    for i, line_id in enumerate(ids):
        params |= {f"b_line_{i}": line_id, f"b_seen_{i}": before[line_id], f"b_qty_{i}": 1}
    with UnitOfWork(engine) as uow:
        stale = params | {"b_seen_1": before[ids[1]] + 1}  # someone moved line 2 meanwhile
        assert _take_units_stmt(2).run(uow.conn, stale) == 1  # caller: conflict
    with UnitOfWork(engine) as uow:
        assert _take_units_stmt(2).run(uow.conn, params) == 2
        uow.commit()
    after = _lines(engine, order_id)
    assert {k: after[k] - before[k] for k in after} == {k: int(k in ids) for k in after}


def test_add_tenders_adds_each_tender_its_own_amount(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    order_id = ex.THRESHOLD["id"]
    tenders = [t["id"] for t in ex.THRESHOLD["tenders"]]
    params: dict[str, object] = {"b_order_id": order_id}
    for i, tender_id in enumerate(tenders):
        params |= {f"b_tender_{i}": tender_id, f"b_amount_{i}": i + 1}
    with UnitOfWork(engine) as uow:
        _add_tenders_stmt(len(tenders)).run(uow.conn, params)
        got = dict(
            uow.conn.execute(
                select(order_tenders.c.tender_id, order_tenders.c.refunded).where(
                    order_tenders.c.order_id == order_id
                )
            ).all()
        )
    assert got == {t: i + 1 for i, t in enumerate(tenders)}


def test_plan_state_read_carries_the_key_answer_and_history(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    order_id = ex.THRESHOLD["id"]
    first_line = ex.THRESHOLD["lines"][0]["id"]
    apply(engine, order_id, first_line, key="k-1")
    with UnitOfWork(engine) as uow:
        inputs = load_plan_inputs(
            uow.conn, order_id, policy=POLICY, lock=True, idempotency_key="k-1"
        )
        assert inputs.key_answer is not None and inputs.key_answer[0].startswith("sha256:")
        assert len(inputs.history) == 1
        fresh = load_plan_inputs(uow.conn, order_id, policy=POLICY, idempotency_key="k-2")
        assert fresh.key_answer is None
        plain = load_plan_inputs(uow.conn, order_id, policy=POLICY)
        assert plain.customer == inputs.customer and plain.order_digest == inputs.order_digest
