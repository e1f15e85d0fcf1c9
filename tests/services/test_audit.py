"""The audit chain catches an edited row, a deleted row, two swapped rows and a cut tail."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select, update
from typer.testing import CliRunner

from refundry.cli import app
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.audit.chain import _canonical
from refundry.services.audit.verify import verify_chain
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def seeded(engine: Engine) -> int:
    """Two orders ingested and one refund applied: a chain of a dozen or so entries."""
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, ex.THRESHOLD, policy=Policy(), now=NOW)
        ingest_order(uow.conn, ex.GIFT, policy=Policy(), now=NOW)
        uow.commit()
    req = ex.request("o-500-100", "Y")
    plan = preview_refund(engine, order_id="o-500-100", request=req, policy=Policy(), now=NOW)
    apply_refund(
        engine,
        order_id="o-500-100",
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key="k",
        actor="agent:a",
        now=NOW,
        policy=Policy(),
    )
    with UnitOfWork(engine, readonly=True) as uow:
        report = verify_chain(uow.conn)
        assert report.ok, report
        count = uow.conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    assert report.entries == count >= 7
    return count


def tamper(engine: Engine, *statements: object) -> None:
    with UnitOfWork(engine) as uow:
        for stmt in statements:
            uow.conn.execute(stmt)  # type: ignore[call-overload]
        uow.commit()


def report(engine: Engine) -> tuple[bool, int | None, str]:
    with UnitOfWork(engine, readonly=True) as uow:
        r = verify_chain(uow.conn)
    return r.ok, r.first_bad_seq, r.problem


def test_edited_row_is_named(engine: Engine) -> None:
    seeded(engine)
    tamper(engine, update(audit_log).where(audit_log.c.seq == 5).values(data='{"total": 1}'))
    ok, seq, problem = report(engine)
    assert (ok, seq) == (False, 5)
    assert "edited" in problem


def test_edited_actor_is_named(engine: Engine) -> None:
    seeded(engine)
    tamper(engine, update(audit_log).where(audit_log.c.seq == 3).values(actor="someone-else"))
    assert report(engine)[:2] == (False, 3)


def test_deleted_row_is_named(engine: Engine) -> None:
    seeded(engine)
    tamper(engine, delete(audit_log).where(audit_log.c.seq == 4))
    ok, seq, problem = report(engine)
    assert (ok, seq) == (False, 4)
    assert "missing" in problem


def test_swapped_rows_are_named(engine: Engine) -> None:
    seeded(engine)
    with UnitOfWork(engine, readonly=True) as uow:
        rows = {
            r.seq: r._asdict()
            for r in uow.conn.execute(select(audit_log).where(audit_log.c.seq.in_([6, 7])))
        }
    fields = {k: v for k, v in rows[7].items() if k != "seq"}
    other = {k: v for k, v in rows[6].items() if k != "seq"}
    tamper(
        engine,
        update(audit_log).where(audit_log.c.seq == 6).values(**fields),
        update(audit_log).where(audit_log.c.seq == 7).values(**other),
    )
    assert report(engine)[:2] == (False, 6)


def test_truncated_tail_is_caught(engine: Engine) -> None:
    count = seeded(engine)
    tamper(engine, delete(audit_log).where(audit_log.c.seq >= count - 1))
    ok, seq, problem = report(engine)
    assert (ok, seq) == (False, count - 1)
    assert "truncated" in problem


def test_cli_verify_names_the_first_bad_entry(db_url: str, engine: Engine) -> None:
    seeded(engine)
    ok = CliRunner().invoke(app, ["audit", "verify", "--url", db_url, "--dev"])
    assert ok.exit_code == 0
    assert "audit chain verified" in ok.stdout
    tamper(engine, update(audit_log).where(audit_log.c.seq == 2).values(action="forged"))
    bad = CliRunner().invoke(app, ["audit", "verify", "--url", db_url, "--dev"])
    assert bad.exit_code == 1
    assert "BROKEN at entry 2" in bad.stderr


@pytest.mark.parametrize("seq", [1])
def test_first_entry_links_to_genesis(engine: Engine, seq: int) -> None:
    seeded(engine)
    tamper(engine, update(audit_log).where(audit_log.c.seq == seq).values(prev_hash="f" * 64))
    assert report(engine)[:2] == (False, seq)


@given(
    seq=st.integers(1, 10**12),
    at=st.datetimes(timezones=st.just(UTC)),
    actor=st.text(),
    action=st.text(),
    order_id=st.none() | st.text(),
    refund_id=st.none() | st.text(),
    data=st.text(),
)
def test_canonical_entry_text_is_the_json_list_it_always_was(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    order_id: str | None,
    refund_id: str | None,
    data: str,
) -> None:
    """Stored chains keep verifying: the written-out form is json.dumps's, byte for byte."""
    expected = json.dumps(
        [seq, at.isoformat(), actor, action, order_id, refund_id, data],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    entry = {"seq": seq, "actor": actor, "action": action, "order_id": order_id}
    entry |= {"refund_id": refund_id, "data": data}
    assert _canonical(at=at, **entry) == expected
    assert _canonical(at=at.isoformat(), **entry) == expected
