"""`refundry db upgrade` and `refundry import` on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from refundry.cli import app
from refundry.demo import worked_examples as ex
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.tables import orders


def test_upgrade_then_import_keeps_good_lines_and_names_bad_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    runner = CliRunner()
    up = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert up.exit_code == 0, up.output
    bad_order = json.loads(json.dumps(ex.GIFT))
    bad_order["lines"][0]["unit_price"] = -1
    lines = [
        json.dumps(ex.THRESHOLD),
        "{not json",
        json.dumps(bad_order),
        json.dumps({"order": ex.POINTS, "customer": {"points_balance": 0}}),
        json.dumps(ex.THRESHOLD),  # the same order again: a no-op
    ]
    file = tmp_path / "orders.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["import", str(file), "--url", url, "--dev"])
    assert result.exit_code == 1
    assert "2 ingested, 1 already present, 2 bad" in result.stdout
    assert f"{file}:2: input.not_json:" in result.stderr
    assert f"{file}:3: order.invalid: must be at least 0 at order.lines[0].unit_price" in (
        result.stderr
    )
    engine = make_engine(url)
    with UnitOfWork(engine, readonly=True) as uow:
        ids = sorted(r for (r,) in uow.conn.execute(select(orders.c.id)))
        assert ids == ["o-500-100", "o-points"]
        assert uow.conn.execute(select(func.count()).select_from(orders)).scalar_one() == 2
    engine.dispose()


def test_one_url_chooses_the_database_default_a_wal_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No URL anywhere: ./refundry.sqlite, in WAL mode; REFUNDRY_DATABASE_URL when set; an
    explicit --url over both."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REFUNDRY_DATABASE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    default = tmp_path / "refundry.sqlite"
    with sqlite3.connect(default) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
    chosen = tmp_path / "chosen.sqlite"
    monkeypatch.setenv("REFUNDRY_DATABASE_URL", f"sqlite:///{chosen}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert chosen.exists()
    explicit = tmp_path / "explicit.sqlite"
    assert runner.invoke(app, ["db", "upgrade", "--url", f"sqlite:///{explicit}"]).exit_code == 0
    assert explicit.exists()
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == [
        "chosen.sqlite",
        "explicit.sqlite",
        "refundry.sqlite",
    ]


def test_metrics_rebuild_sets_the_counters_from_the_store(tmp_path: Path) -> None:
    from refundry.services.operations.metric_counters import counted_figures, fold
    from refundry.services.operations.metrics_figures import scan_figures
    from refundry.store.tables import metric_counters

    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--url", url]).exit_code == 0
    lines = tmp_path / "orders.jsonl"
    lines.write_text(json.dumps(ex.THRESHOLD) + "\n" + json.dumps(ex.CASHBACK) + "\n")
    assert runner.invoke(app, ["import", str(lines), "--url", url, "--dev"]).exit_code == 0
    engine = make_engine(url)
    with UnitOfWork(engine) as uow:  # counted, then edited by hand: 7 orders is wrong
        fold(uow.conn)
        uow.conn.execute(metric_counters.update().values(value=7))
        uow.commit()
    with UnitOfWork(engine) as uow:
        assert counted_figures(uow.conn).orders == 7
    result = runner.invoke(app, ["metrics", "rebuild", "--url", url])
    assert result.exit_code == 0, result.output
    with UnitOfWork(engine) as uow:
        assert counted_figures(uow.conn) == scan_figures(uow.conn)
        assert counted_figures(uow.conn).orders == 2
    engine.dispose()
