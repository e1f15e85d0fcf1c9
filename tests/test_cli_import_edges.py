"""`refundry import` refuses the same lines on SQLite and PostgreSQL and keeps the good ones
(issue 16 point 2: on PostgreSQL a quantity of 2^31, a 65-character id or a NUL aborted the run
with a traceback, losing the good line before the bad one; SQLite stored them)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from refundry.cli import app
from refundry.demo import worked_examples as ex
from refundry.store.engine import make_engine
from refundry.store.tables import customers, order_lines, orders


def test_import_refuses_out_of_range_and_bad_text_lines_and_keeps_the_good_ones(
    db_url: str, tmp_path: Path
) -> None:
    huge = ex.order("o-huge", [ex.line("L1", 1, quantity=2**31)], 2**31)
    long_id = ex.order("o" * 65, [ex.line("L1", 1000)], 1000)
    nul = {**ex.order("o-nul", [ex.line("L1", 1000)], 1000), "customer_id": "c-\x00"}
    lines = [
        json.dumps(ex.order("o-good-1", [ex.line("L1", 1000)], 1000)),
        json.dumps(huge),
        json.dumps(long_id),
        json.dumps(nul),
        json.dumps(ex.order("o-good-2", [ex.line("L1", 2000)], 2000)),
    ]
    file = tmp_path / "orders.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", str(file), "--url", db_url, "--dev"])
    assert result.exit_code == 1, result.output
    assert "2 ingested, 0 already present, 3 bad" in result.stdout
    assert result.stderr.splitlines() == [
        f"{file}:2: order.invalid: must be at most {2**31 - 1} at order.lines[0].quantity",
        f"{file}:3: order.invalid: must be at most 64 characters at order.id",
        f"{file}:4: order.invalid: must be Unicode text without control characters "
        r"(found '\x00') at order.customer_id",
    ]
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert sorted(conn.execute(select(orders.c.id)).scalars()) == ["o-good-1", "o-good-2"]
            assert sorted(conn.execute(select(order_lines.c.order_id)).scalars()) == [
                "o-good-1",
                "o-good-2",
            ]
            assert list(conn.execute(select(customers.c.id)).scalars()) == [ex.CUSTOMER]
    finally:
        engine.dispose()


def test_plan_names_a_lone_surrogate_in_a_document_on_one_line(tmp_path: Path) -> None:
    """The CLI's error line escapes what it cannot print (a lone surrogate would not encode)."""
    order = tmp_path / "order.json"
    order.write_text(json.dumps(ex.order("o-1", [ex.line("L1", 1000)], 1000)), encoding="utf-8")
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps(ex.snapshot()), encoding="utf-8")
    request = tmp_path / "request.json"
    request.write_text(json.dumps(ex.request("o-1", "L\ud800")), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["plan", str(order), str(snapshot), str(request), "--now", ex.NOW]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "refundry: request.invalid at request.lines[0].line_id: must be Unicode text without "
        "control characters (found '\\ud800')\n"
    )
