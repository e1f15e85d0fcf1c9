"""Prepared statements run on the driver's cursor behave as Connection.execute does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Column, Engine, bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from refundry.store.prepared import Prepared, pipelined
from refundry.store.tables import audit_heads, customers, ledger_accounts, metadata, outbox

AT = datetime(2026, 11, 25, 9, 30, tzinfo=timezone(timedelta(hours=8)))

INSERT_MESSAGE = Prepared(insert(outbox))
MESSAGE = Prepared(
    select(outbox.c.key, outbox.c.created_at, outbox.c.attempts).where(
        outbox.c.key == bindparam("key")
    )
)
HEAD = Prepared(select(audit_heads.c.seq).where(audit_heads.c.chain == "c1"))  # a literal bound
MOVE = Prepared(
    update(ledger_accounts)
    .where(ledger_accounts.c.id == bindparam("b_id"))
    .values(balance=ledger_accounts.c.balance + bindparam("b_delta"))
    .returning(ledger_accounts.c.balance)
)


def message(key: str, at: datetime = AT, **extra: Any) -> dict[str, Any]:
    return {
        "topic": "event",
        "key": key,
        "status": "pending",
        "available_at": at,
        "created_at": at,
        "payload": "{}",
        **extra,
    }


def test_insert_select_with_type_processing(engine: Engine) -> None:
    with engine.begin() as conn:
        INSERT_MESSAGE.run(conn, message("m-1"))
        INSERT_MESSAGE.run(conn, message("m-2", attempts=3))  # another set of columns
        INSERT_MESSAGE.run_many(conn, [message(f"m-{i}") for i in range(3, 6)])
        first = MESSAGE.first(conn, {"key": "m-1"})
        second = MESSAGE.first(conn, {"key": "m-2"})
        assert MESSAGE.first(conn, {"key": "nope"}) is None
        # the same rows through SQLAlchemy
        plain = conn.execute(select(outbox.c.key).order_by(outbox.c.key)).scalars().all()
    assert plain == ["m-1", "m-2", "m-3", "m-4", "m-5"]
    assert first.key == "m-1" and first.attempts == 0  # the server default applied
    assert second.attempts == 3  # a column with a server default, given explicitly
    assert first.created_at == AT and first.created_at.tzinfo == UTC  # UTCDateTime both ways


def test_literal_binds_returning_and_rowcount(engine: Engine) -> None:
    with engine.begin() as conn:
        assert HEAD.first(conn) is None
        conn.execute(insert(audit_heads).values(chain="c1", seq=7, hash="x" * 64))
        assert HEAD.first(conn).seq == 7
        conn.execute(insert(customers).values(id="c1", created_at=AT))
        conn.execute(
            insert(ledger_accounts).values(
                id="wallet:c1", kind="wallet", customer_id="c1", balance=100
            )
        )
        assert MOVE.first(conn, {"b_id": "wallet:c1", "b_delta": 25}).balance == 125
        assert MOVE.rows(conn, {"b_id": "wallet:nobody", "b_delta": 1}) == []
        count = Prepared(
            update(outbox).where(outbox.c.topic == bindparam("t")).values(attempts=1)
        ).run(conn, {"t": "event"})
        assert count == 0


def test_driver_errors_are_sqlalchemy_errors_and_roll_back(engine: Engine) -> None:
    with engine.connect() as conn:
        tx = conn.begin()
        INSERT_MESSAGE.run(conn, message("dup"))
        with pytest.raises(IntegrityError):
            INSERT_MESSAGE.run(conn, message("dup"))
        tx.rollback()
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.key)).first() is None


def test_cursor_events_see_every_statement(engine: Engine) -> None:
    seen: list[tuple[str, bool]] = []

    def before(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        seen.append((statement.split()[0], many))

    event.listen(engine, "before_cursor_execute", before)
    try:
        with engine.begin() as conn:
            INSERT_MESSAGE.run(conn, message("e-1"))
            INSERT_MESSAGE.run_many(conn, [message("e-2"), message("e-3")])
            MESSAGE.rows(conn, {"key": "e-1"})
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert [s for s in seen if s[0] != "BEGIN"] == [
        ("INSERT", False),
        ("INSERT", True),
        ("SELECT", False),
    ]


def test_missing_parameter_is_a_clear_error(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(KeyError, match="key"):
        MESSAGE.rows(conn, {})


def test_unsupported_statements_are_refused_when_prepared(engine: Engine) -> None:
    expanding = Prepared(
        select(outbox.c.id).where(outbox.c.key.in_(bindparam("k", expanding=True)))
    )
    with engine.begin() as conn, pytest.raises(ValueError, match="expanding"):
        expanding.rows(conn, {"k": ["a"]})
    table = outbox.to_metadata(metadata.__class__())
    table.append_column(Column("extra", outbox.c.status.type, default="x"))
    with engine.begin() as conn, pytest.raises(ValueError, match="defaults"):
        Prepared(insert(table)).run(conn, message("d-1"))


class Moved(Exception):
    pass


def test_pipelined_block_checks_row_counts_when_the_answers_are_in(engine: Engine) -> None:
    touch = Prepared(
        update(outbox)
        .where(outbox.c.key == bindparam("key"))
        .values(attempts=outbox.c.attempts + 1)
    )
    with engine.begin() as conn:
        INSERT_MESSAGE.run_many(conn, [message("p-1"), message("p-2")])
    with engine.connect() as conn:
        tx = conn.begin()
        with pipelined(conn):
            touch.run_expecting(conn, {"key": "p-1"}, 1, Moved("p-1"))
            answer = MESSAGE.later(conn, {"key": "p-2"})
        assert answer.first().attempts == 0
        with pytest.raises(Moved, match="p-9"), pipelined(conn):
            touch.run_expecting(conn, {"key": "p-2"}, 1, Moved("p-2"))
            touch.run_expecting(conn, {"key": "p-9"}, 1, Moved("p-9"))  # no such row
        tx.rollback()
    with engine.connect() as conn:
        attempts = dict(conn.execute(select(outbox.c.key, outbox.c.attempts)).all())
    assert attempts == {"p-1": 0, "p-2": 0}  # rolled back with the transaction


def test_an_error_inside_a_pipeline_is_a_sqlalchemy_error(engine: Engine) -> None:
    with engine.connect() as conn:
        tx = conn.begin()
        with pytest.raises(IntegrityError), pipelined(conn):
            INSERT_MESSAGE.run(conn, message("twice"))
            INSERT_MESSAGE.run(conn, message("twice"))
            INSERT_MESSAGE.run(conn, message("after"))
        tx.rollback()
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.key)).all() == []
