"""One audit chain per customer (issue #15 point 5): entries go to the chain of the customer
their transaction acts on, each chain with its own head; transactions of different customers
do not wait for each other's head; a chain's cut tail is caught by the checkpoints an earlier
``refundry audit verify`` sealed, and an entry moved to another chain by its signature.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select, text, update
from typer.testing import CliRunner

from refundry.cli import app
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.audit.chain import (
    GENESIS,
    LEGACY_CHAIN,
    SYSTEM_CHAIN,
    AuditTrail,
    chain_of,
    signed_hash,
)
from refundry.services.audit.keys import DEV_AUDIT_KEY
from refundry.services.audit.verify import verify_chain
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_checkpoints, audit_heads, audit_log
from tests.services.test_audit_keys import old_note

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def order_of(customer: str, order_id: str) -> dict[str, object]:
    doc = copy.deepcopy(ex.THRESHOLD)
    doc.update(id=order_id, customer_id=customer)
    return doc


def seeded(engine: Engine) -> None:
    """Two customers' orders and a system act (a token revoked)."""
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, order_of("c-a", "o-a1"), policy=Policy(), now=NOW)
        ingest_order(uow.conn, order_of("c-b", "o-b1"), policy=Policy(), now=NOW)
        uow.commit()
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, order_of("c-a", "o-a2"), policy=Policy(), now=NOW)
        trail = AuditTrail(actor="admin:root", at=NOW, customer_id=None)
        trail.record("token.revoked", jti="t-1")
        trail.flush(uow.conn)
        uow.commit()


def chains(engine: Engine) -> dict[str, list[tuple[int, str, str | None]]]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(
                audit_log.c.chain, audit_log.c.seq, audit_log.c.action, audit_log.c.order_id
            ).order_by(audit_log.c.chain, audit_log.c.seq)
        ).all()
    out: dict[str, list[tuple[int, str, str | None]]] = {}
    for chain, seq, action, order_id in rows:
        out.setdefault(chain, []).append((seq, action, order_id))
    return out


def heads(engine: Engine) -> dict[str, int]:
    with UnitOfWork(engine, readonly=True) as uow:
        found = uow.conn.execute(select(audit_heads.c.chain, audit_heads.c.seq)).all()
    return {str(chain): int(seq) for chain, seq in found}


def check(engine: Engine) -> tuple[bool, str | None, int | None]:
    with UnitOfWork(engine, readonly=True) as uow:
        report = verify_chain(uow.conn)
    return report.ok, report.chain, report.first_bad_seq


def test_each_customer_has_a_chain_counted_from_one(engine: Engine) -> None:
    seeded(engine)
    assert chains(engine) == {
        "c-a": [
            (1, "customer.opened", None),
            (2, "order.ingested", "o-a1"),
            (3, "order.ingested", "o-a2"),
        ],
        "c-b": [(1, "customer.opened", None), (2, "order.ingested", "o-b1")],
        SYSTEM_CHAIN: [(1, "token.revoked", None)],
    }
    assert heads(engine) == {"c-a": 3, "c-b": 2, SYSTEM_CHAIN: 1}
    with UnitOfWork(engine, readonly=True) as uow:
        report = verify_chain(uow.conn)
    assert (report.ok, report.entries, report.chains) == (True, 6, 3)


def test_a_bulk_trail_writes_each_customers_entries_to_its_chain(engine: Engine) -> None:
    seeded(engine)
    with UnitOfWork(engine) as uow:
        trail = AuditTrail(actor="bulk:j1", at=NOW, customer_id=None)
        for customer in ("c-b", "c-a"):
            with trail.about(customer):
                trail.record("refund.applied", order_id=f"o-{customer[-1]}1")
        trail.record("bulk.job_finished", job_id="j1")
        trail.flush(uow.conn)
        uow.commit()
    found = chains(engine)
    assert found["c-a"][-1] == (4, "refund.applied", "o-a1")
    assert found["c-b"][-1] == (3, "refund.applied", "o-b1")
    assert found[SYSTEM_CHAIN][-1] == (2, "bulk.job_finished", None)
    assert check(engine) == (True, None, None)


def test_an_entry_moved_to_another_chain_breaks_its_signature(engine: Engine) -> None:
    """The chain is in the signed text: an entry of c-b put at the end of c-a, links and
    head made to fit, does not verify."""
    seeded(engine)
    with UnitOfWork(engine) as uow:
        last = uow.conn.execute(
            select(audit_log.c.hash).where(audit_log.c.chain == "c-a", audit_log.c.seq == 3)
        ).scalar_one()
        moved = uow.conn.execute(
            select(audit_log).where(audit_log.c.chain == "c-b", audit_log.c.seq == 2)
        ).one()
        uow.conn.execute(delete(audit_log).where(audit_log.c.chain == "c-b", audit_log.c.seq == 2))
        uow.conn.execute(update(audit_heads).where(audit_heads.c.chain == "c-b").values(seq=1))
        values = moved._asdict() | {"chain": "c-a", "seq": 4, "prev_hash": last}
        uow.conn.execute(audit_log.insert().values(**values))
        uow.conn.execute(
            update(audit_heads).where(audit_heads.c.chain == "c-a").values(seq=4, hash=moved.hash)
        )
        uow.commit()
    ok, chain, seq = check(engine)
    assert (ok, chain, seq) == (False, "c-a", 4)


def test_a_customer_id_like_a_reserved_chain_gets_a_chain_of_its_own() -> None:
    assert chain_of("c-1") == "c-1"
    assert chain_of(None) == SYSTEM_CHAIN
    assert chain_of("~system") == "~~system" != SYSTEM_CHAIN
    assert chain_of("~~system") == "~~~system"


def _anchor(result_stdout: str) -> str:
    (line,) = [ln for ln in result_stdout.splitlines() if "--anchor" in ln]
    return line.rsplit(" ", 1)[1]


def test_a_checkpoint_kept_outside_catches_one_chains_rolled_back_tail(
    engine: Engine, db_url: str
) -> None:
    """A cut tail with its head moved back is a consistent chain: only the checkpoint an
    earlier run sealed, whose digest the operator kept, shows it — in any customer's chain."""
    seeded(engine)
    first = CliRunner().invoke(app, ["audit", "verify", "--url", db_url, "--dev"])
    assert first.exit_code == 0, first.stderr
    assert "6 entries in 3 chains" in first.stdout
    anchor = _anchor(first.stdout)
    assert anchor.startswith("1:")
    with UnitOfWork(engine) as uow:
        prev = uow.conn.execute(
            select(audit_log.c.hash).where(audit_log.c.chain == "c-a", audit_log.c.seq == 2)
        ).scalar_one()
        uow.conn.execute(delete(audit_log).where(audit_log.c.chain == "c-a", audit_log.c.seq == 3))
        uow.conn.execute(
            update(audit_heads).where(audit_heads.c.chain == "c-a").values(seq=2, hash=prev)
        )
        uow.commit()
    plain = ["audit", "verify", "--url", db_url, "--dev", "--no-checkpoint"]
    assert CliRunner().invoke(app, plain).exit_code == 0  # consistent without the anchor
    caught = CliRunner().invoke(app, [*plain, "--anchor", anchor])
    assert caught.exit_code == 1
    assert "BROKEN at entry 3 of chain 'c-a'" in caught.stderr


def test_checkpoints_chain_their_digests_and_record_only_moved_heads(
    engine: Engine, db_url: str
) -> None:
    seeded(engine)
    run = ["audit", "verify", "--url", db_url, "--dev"]
    first = _anchor(CliRunner().invoke(app, run).stdout)
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, order_of("c-b", "o-b2"), policy=Policy(), now=NOW)
        uow.commit()
    second = _anchor(CliRunner().invoke(app, [*run, "--anchor", first]).stdout)
    assert second.startswith("2:")
    with UnitOfWork(engine, readonly=True) as uow:
        recorded = uow.conn.execute(
            select(audit_checkpoints.c.heads).order_by(audit_checkpoints.c.id)
        ).scalars()
        texts = list(recorded)
    assert '"c-a"' in texts[0] and '"c-b"' in texts[0] and '"~system"' in texts[0]
    assert texts[1].startswith('{"c-b":[3,') and '"c-a"' not in texts[1]
    # an altered checkpoint breaks the digests the operator kept
    with UnitOfWork(engine) as uow:
        uow.conn.execute(
            update(audit_checkpoints)
            .where(audit_checkpoints.c.id == 1)
            .values(heads=texts[0].replace('"c-a":[3', '"c-a":[2'))
        )
        uow.commit()
    caught = CliRunner().invoke(app, [*run, "--no-checkpoint", "--anchor", second])
    assert caught.exit_code == 1
    assert "checkpoint 1 was altered" in caught.stderr


def test_a_customers_open_transaction_does_not_hold_another_customers_head(
    pg_engine: Engine,
) -> None:
    """PostgreSQL: while c-a's transaction holds its head (appended, not committed), c-b's
    appends at once — the one head row of before made it wait (lock_timeout: it fails)."""
    seeded(pg_engine)
    with UnitOfWork(pg_engine) as holding:
        trail = AuditTrail(actor="agent:li", at=NOW, customer_id="c-a")
        trail.record("note.added", order_id="o-a1")
        trail.flush(holding.conn)
        with pg_engine.connect() as other, other.begin():
            other.execute(text("SET LOCAL lock_timeout = '5s'"))
            trail = AuditTrail(actor="agent:li", at=NOW, customer_id="c-b")
            trail.record("note.added", order_id="o-b1")
            trail.flush(other)
        holding.commit()
    assert heads(pg_engine) == {"c-a": 4, "c-b": 3, SYSTEM_CHAIN: 1}
    assert check(pg_engine) == (True, None, None)


def test_a_head_printed_before_0019_still_anchors_the_legacy_chain(
    engine: Engine, db_url: str
) -> None:
    """``--anchor SEQ:HASH`` as runs before 0019 printed it: checked against the legacy chain,
    whose entries are signed as they were (no chain name in the signed text)."""
    prev = GENESIS
    hashes = []
    with UnitOfWork(engine) as uow:
        for seq in (1, 2):
            entry = old_note(seq)
            digest = signed_hash(DEV_AUDIT_KEY, "dev", LEGACY_CHAIN, prev, **entry)
            row = entry | {"chain": LEGACY_CHAIN, "prev_hash": prev, "hash": digest}
            uow.conn.execute(audit_log.insert().values(**row, key_id="dev"))
            hashes.append(digest)
            prev = digest
        uow.conn.execute(audit_heads.insert().values(chain=LEGACY_CHAIN, seq=2, hash=prev))
        uow.commit()
    run = ["audit", "verify", "--url", db_url, "--dev", "--no-checkpoint"]
    held = CliRunner().invoke(app, [*run, "--anchor", f"2:{hashes[1]}"])
    assert held.exit_code == 0, held.stderr
    assert "2 entries in 1 chains" in held.stdout
    with UnitOfWork(engine) as uow:  # the tail cut, the head moved back
        uow.conn.execute(
            delete(audit_log).where(audit_log.c.chain == LEGACY_CHAIN, audit_log.c.seq == 2)
        )
        uow.conn.execute(update(audit_heads).values(seq=1, hash=hashes[0]))
        uow.commit()
    assert CliRunner().invoke(app, run).exit_code == 0
    caught = CliRunner().invoke(app, [*run, "--anchor", f"2:{hashes[1]}"])
    assert caught.exit_code == 1
    assert "nor is it an entry of the legacy chain" in caught.stderr
