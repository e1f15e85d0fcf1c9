"""`refundry bulk-refund` on a real SQLite file: the dry run prints what would move and writes
nothing; bad input is one line naming the field, exit 2, nothing stored; a file of order ids,
the report, and --resume of a finished job."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from refundry.cli import app
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.tables import bulk_jobs, refunds
from tests.services.bulk_world import PAID, ingest, order_doc


def shop(tmp_path: Path, n: int = 3) -> str:
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    assert CliRunner().invoke(app, ["db", "upgrade", "--url", url]).exit_code == 0
    engine = make_engine(url)
    ingest(engine, [order_doc(i, with_points=True) for i in range(n)], now=PAID)
    engine.dispose()
    return url


def counts(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    with UnitOfWork(engine, readonly=True) as uow:
        found = (
            uow.conn.execute(select(func.count()).select_from(bulk_jobs)).scalar_one(),
            uow.conn.execute(select(func.count()).select_from(refunds)).scalar_one(),
        )
    engine.dispose()
    return found


def test_the_dry_run_prints_what_would_move_and_writes_nothing(tmp_path: Path) -> None:
    url = shop(tmp_path)
    args = ["bulk-refund", "--url", url, "--dev", "--sku", "RECALLED", "--reason", "quality_issue"]
    result = CliRunner().invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for expected in (
        "orders selected: 3",
        "refunds: 3",
        "money back: 600.00 CNY",
        "  to external tenders: 576.00 CNY",
        "  to points tenders: 24.00 CNY",
        "points returned: 2400",
        "need manual review: 0",
    ):
        assert expected in lines, result.stdout
    assert counts(url) == (0, 0)


def test_bad_input_is_one_line_naming_the_field_and_exit_2(tmp_path: Path) -> None:
    url = shop(tmp_path, 1)
    base = ["bulk-refund", "--url", url, "--dev"]
    for extra, line in [
        (["--reason", "quality_issue"], "refundry: bulk.selector_missing at selector: "),
        (
            ["--paid-from", "2026-11-02", "--reason", "quality_issue"],
            "refundry: bulk.invalid at selector.paid_from: ",
        ),
        (["--sku", "RECALLED", "--reason", "bored"], "refundry: bulk.invalid at reason: "),
        (["--sku", "NOPE", "--reason", "quality_issue"], "refundry: bulk.nothing_selected: "),
        (["--resume", "bj_nope"], "refundry: bulk.job_not_found: "),
        (["--sku", "RECALLED"], "refundry: --reason is required (or --resume JOB)"),
    ]:
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr
    assert counts(url) == (0, 0)


def test_a_file_of_order_ids_then_resume_of_the_finished_job(tmp_path: Path) -> None:
    url = shop(tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("# the recall's list\no-00002\n\no-00000  # a comment\no-nope\n", "utf-8")
    report = tmp_path / "out.csv"
    args = ["bulk-refund", "--url", url, "--dev", "--order-ids", str(ids)]
    result = CliRunner().invoke(
        app, [*args, "--reason", "merchant_breach", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    assert "2 refunded, 1 refused, 0 for manual review, 0 skipped" in result.stdout
    rows = report.read_text(encoding="utf-8").splitlines()
    assert [r.split(",")[:4] for r in rows[1:]] == [
        ["o-00002", "c-00002", "refunded", ""],
        ["o-00000", "c-00000", "refunded", ""],
        ["o-nope", "", "refused", "order.not_found"],
    ]
    job_id = result.stdout.split("bulk refund job ")[1].split()[0]
    again = CliRunner().invoke(
        app, ["bulk-refund", "--url", url, "--dev", "--resume", job_id, "--report", str(report)]
    )
    assert again.exit_code == 0, again.output
    assert f"job {job_id}: 3 of 3 done" in again.stdout
    assert counts(url) == (1, 2)  # nothing refunded twice
