"""The audit log is signed with a key the database does not hold (issue 16 point 5).

A full rewrite — an entry edited, then every later hash and the head recomputed, so that the
old unkeyed chain verified again — is caught by ``refundry audit verify`` unless the writer held
the key; so is the same rewrite made unsigned (a downgrade to the pre-0010 form). An order's
audit is checked where it stands, at a cost that does not grow with the chain. Chains written
before migration 0010 keep verifying after the upgrade, and keys rotate.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    event,
    insert,
    select,
    update,
)
from typer.testing import CliRunner

from refundry.cli import app
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.access import Actor
from refundry.services.audit.chain import GENESIS, LEGACY_CHAIN, AuditTrail, entry_hash, signed_hash
from refundry.services.audit.keys import AuditKeys, attach_keys
from refundry.services.audit.verify import verify_chain, verify_entries
from refundry.services.audit.views import order_audit
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.migrate import upgrade
from refundry.store.tables import audit_heads, audit_log
from refundry.store.types import UTCDateTime
from tests.conftest import _drop_pg, _fresh_pg

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
KEYS = AuditKeys("a1", {"a1": b"the shop's audit key, kept out of the database"})
AGENT = Actor("agent", "li")
CHAIN = "c-100"  # the customer of both seeded orders: their entries' chain


def seeded(engine: Engine) -> None:
    attach_keys(engine, KEYS)
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
    assert check(engine).ok


def check(engine: Engine, keys: AuditKeys = KEYS) -> Any:
    with UnitOfWork(engine, readonly=True) as uow:
        return verify_chain(uow.conn, keys)


def rewrite(engine: Engine, at_seq: int, sign: Any) -> None:
    """What an attacker with the database does: edit entry ``at_seq``, then recompute every
    later hash and the head with ``sign(prev, row) -> (hash, key_id)``."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        rows = conn.execute(
            select(audit_log).where(audit_log.c.chain == CHAIN).order_by(audit_log.c.seq)
        ).all()
        prev = GENESIS
        for row in rows:
            data = row.data
            if row.seq == at_seq:
                data = data.replace("agent:a", "agent:mallory") if "agent:a" in data else "{}"
            if row.seq >= at_seq:
                entry = dict(
                    seq=row.seq,
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    order_id=row.order_id,
                    refund_id=row.refund_id,
                    data=data,
                )
                digest, key_id = sign(prev, entry)
                conn.execute(
                    update(audit_log)
                    .where(audit_log.c.chain == CHAIN, audit_log.c.seq == row.seq)
                    .values(data=data, prev_hash=prev, hash=digest, key_id=key_id)
                )
                prev = digest
            else:
                prev = row.hash
        conn.execute(
            update(audit_heads)
            .where(audit_heads.c.chain == CHAIN)
            .values(seq=rows[-1].seq, hash=prev)
        )
        uow.commit()


def unkeyed(prev: str, entry: dict[str, Any]) -> tuple[str, str | None]:
    return entry_hash(prev, **entry), None


def guessed_key(prev: str, entry: dict[str, Any]) -> tuple[str, str | None]:
    return signed_hash(b"a guess", "a1", CHAIN, prev, **entry), "a1"


def the_key(prev: str, entry: dict[str, Any]) -> tuple[str, str | None]:
    return signed_hash(KEYS.keys["a1"], "a1", CHAIN, prev, **entry), "a1"


@pytest.mark.parametrize("sign", [unkeyed, guessed_key], ids=["unsigned", "guessed_key"])
def test_a_full_rewrite_without_the_key_is_caught_by_audit_verify(
    engine: Engine, db_url: str, sign: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(engine)
    rewrite(engine, 3, sign)
    report = check(engine)
    assert (report.ok, report.first_bad_seq) == (False, 3), report
    # the operator's command, with the key in its settings
    monkeypatch.setenv("REFUNDRY_AUDIT_KEY", KEYS.keys["a1"].decode())
    bad = CliRunner().invoke(app, ["audit", "verify", "--url", db_url])
    assert bad.exit_code == 1, bad.stdout
    assert "BROKEN at entry 3" in bad.stderr
    # and an order's audit says so too
    assert order_audit(engine, "o-500-100", AGENT).chain_verified is False


def test_only_the_key_holder_can_rewrite_the_chain(engine: Engine) -> None:
    """The control: the same rewrite made with the key verifies, so the test above fails for
    the lack of the key alone (and so a rewrite made without the key on the old unkeyed chain,
    ``unkeyed`` above, verified before 0010)."""
    seeded(engine)
    rewrite(engine, 3, the_key)
    assert check(engine).ok


def test_audit_verify_without_the_key_outside_dev_mode_refuses(db_url: str) -> None:
    result = CliRunner().invoke(app, ["audit", "verify", "--url", db_url])
    assert result.exit_code == 2
    assert "audit_key (REFUNDRY_AUDIT_KEY) is not set" in result.stderr


def test_rotated_keys_keep_verifying_the_entries_they_signed(engine: Engine) -> None:
    seeded(engine)  # signed with a1
    rotated = AuditKeys("a2", {"a1": KEYS.keys["a1"], "a2": b"the new key"})
    attach_keys(engine, rotated)
    with UnitOfWork(engine) as uow:
        trail = AuditTrail(actor="agent:li", at=NOW, customer_id=CHAIN)
        trail.record("note.added", order_id="o-500-100", text="after the rotation")
        trail.flush(uow.conn)
        uow.commit()
    with UnitOfWork(engine, readonly=True) as uow:
        ids = set(uow.conn.execute(select(audit_log.c.key_id)).scalars())
    assert ids == {"a1", "a2"}
    assert check(engine, rotated).ok
    forgotten = check(engine, AuditKeys("a2", {"a2": b"the new key"}))
    assert (forgotten.ok, forgotten.first_bad_seq) == (False, 1)
    assert "'a1'" in forgotten.problem


def test_reading_an_orders_audit_does_not_walk_the_chain(engine: Engine) -> None:
    """The same statements, reading the same rows, with 2,000 more entries of other orders:
    every statement on audit_log is bounded (by the order, by sequence numbers, or LIMIT)."""
    seeded(engine)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()))

    def read() -> tuple[list[str], Any]:
        statements.clear()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            trail = order_audit(engine, "o-500-100", AGENT)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return list(statements), trail

    before, small = read()
    with UnitOfWork(engine) as uow:
        trail = AuditTrail(actor="system:test", at=NOW, customer_id=CHAIN)  # the order's chain
        for n in range(2000):
            trail.record("note.added", order_id=f"o-other-{n % 50}", n=n)
        trail.flush(uow.conn)
        uow.commit()
    after, large = read()
    assert before == after
    assert small.entries == large.entries and large.chain_verified is True
    on_log = [s for s in after if "FROM audit_log" in s]
    assert on_log and all("WHERE" in s or "LIMIT" in s for s in on_log), on_log


def test_an_edited_entry_of_the_order_is_caught_by_its_audit(engine: Engine) -> None:
    seeded(engine)
    with UnitOfWork(engine) as uow:
        seq = uow.conn.execute(
            select(audit_log.c.seq).where(audit_log.c.order_id == "o-500-100").limit(1)
        ).scalar_one()
        uow.conn.execute(
            update(audit_log)
            .where(audit_log.c.chain == CHAIN, audit_log.c.seq == seq)
            .values(actor="x")
        )
        uow.commit()
    trail = order_audit(engine, "o-500-100", AGENT)
    assert trail.chain_verified is False
    assert trail.chain_problem is not None and trail.chain_problem.startswith(
        f"entry {seq} of chain 'c-100':"
    )


# The log and head tables of revisions before 0010 (one chain, one head row).
OLD = MetaData()
OLD_LOG = Table(
    "audit_log",
    OLD,
    Column("seq", Integer),
    Column("at", UTCDateTime()),
    *(Column(n, String) for n in ("actor", "action", "order_id", "refund_id", "data")),
    *(Column(n, String) for n in ("prev_hash", "hash")),
)
OLD_HEAD = Table(
    "audit_head",
    OLD,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer),
    Column("hash", String(64)),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url_at_0009(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
        upgrade(url, "0009")
        yield url
        return
    url = _fresh_pg(request.getfixturevalue("pg_url"))
    try:
        upgrade(url, "0009")
        yield url
    finally:
        _drop_pg(url)


def old_note(seq: int) -> dict[str, Any]:
    """An entry as a shop before 0019 wrote it: a note on order o-1."""
    return dict(
        seq=seq,
        at=NOW,
        actor="agent:li",
        action="note.added",
        order_id="o-1",
        refund_id=None,
        data=f'{{"n":{seq}}}',
    )


def test_a_chain_written_before_0010_keeps_verifying_after_the_upgrade(url_at_0009: str) -> None:
    """Entries written the old way (unkeyed sha256, no key id) by a shop on 0009."""
    old = make_engine(url_at_0009)
    prev = GENESIS
    try:
        with old.begin() as conn:
            for seq in (1, 2, 3):
                entry = old_note(seq)
                digest = entry_hash(prev, **entry)
                # the columns 0009 had (no key_id)
                conn.execute(insert(OLD_LOG).values(**entry, prev_hash=prev, hash=digest))
                prev = digest
            conn.execute(insert(OLD_HEAD).values(id=1, seq=3, hash=prev))
    finally:
        old.dispose()
    upgrade(url_at_0009)
    engine = make_engine(url_at_0009)
    try:
        attach_keys(engine, AuditKeys("a1", KEYS.keys, unkeyed_through=3))
        with UnitOfWork(engine) as uow:
            trail = AuditTrail(actor="agent:li", at=NOW, customer_id="c-1")
            trail.record("note.added", order_id="o-1", n=4)
            trail.flush(uow.conn)
            uow.commit()
        assert check(engine, AuditKeys("a1", KEYS.keys, unkeyed_through=3)).ok
        with UnitOfWork(engine, readonly=True) as uow:
            rows = uow.conn.execute(
                select(audit_log).order_by(audit_log.c.chain, audit_log.c.seq)
            ).all()
            assert [(r.chain, r.seq) for r in rows] == [("c-1", 1)] + [
                (LEGACY_CHAIN, n) for n in (1, 2, 3)
            ]
            mixed = rows[:1] + rows[2:]  # the new chain's entry, legacy 2 and 3
            report = verify_entries(uow.conn, mixed, AuditKeys("a1", KEYS.keys, 3))
        assert report.ok, report
        # the setting left at 0: unsigned entries are a break, as a downgrade rewrite would be
        unset = check(engine, KEYS)
        assert (unset.ok, unset.first_bad_seq) == (False, 1)
    finally:
        engine.dispose()
