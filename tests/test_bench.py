"""The apply benchmark's own checks, on a few refunds: the bare driver's replay of refundry's
writes must insert and update the same rows and end with the same database, on both backends.
(The figures are for docs/benchmarks.md; only the checks belong in tests.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str) -> str:
    """``bench/<script>`` with ``args`` against the tests' PostgreSQL server: its output, once
    it exited 0."""
    admin = os.environ.get("REFUNDRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "REFUNDRY_TEST_PG": admin, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold-apply"])
def test_apply_bench_checks_hold_on_both_backends(pg_url: str, cold: bool) -> None:
    args = ["--refunds", "20", "--backend", "both", "--no-history-check"]
    out = run_bench("apply_bench.py", *args, "--cold-apply" if cold else "--no-cold-apply")
    for backend in ("sqlite", "postgresql"):
        assert (
            f"{backend}: " in out
            and "counts equal, contents identical; the timed run inserted the same rows" in out
        )
    assert out.count("counts equal, contents identical") == 2


def test_bulk_bench_checks_hold_on_both_backends(pg_url: str) -> None:
    """bench/bulk_bench.py on 40 orders: both sides inserted and updated the same rows, the twin
    and the baseline ended identical, on each backend."""
    out = run_bench("bulk_bench.py", "--orders", "40", "--batch", "8")
    assert out.count("counts equal, contents identical (twin and baseline)") == 2
    for backend in ("sqlite", "postgresql"):
        assert re.search(rf"^{backend} +40 ", out, re.MULTILINE), out


def test_parallel_apply_bench_runs_both_modes_at_each_process_count(pg_url: str) -> None:
    """bench/parallel_apply_bench.py on 2 refunds a process: every worker's refunds applied (a
    failed apply exits non-zero) and a row per mode and process count."""
    out = run_bench(
        "parallel_apply_bench.py", "--refunds", "2", "--repeats", "1", "--processes", "1,2"
    )
    for mode in ("per-customer", "one chain"):
        for n in (1, 2):
            assert re.search(rf"^ *{mode} +{n} +\d", out, re.MULTILINE), out


def test_import_bench_checks_hold_on_both_backends(pg_url: str) -> None:
    """bench/import_bench.py on 60 orders: every line imported, and the bare side's replay of
    the inserts left the same number of rows in every table it wrote, on each backend."""
    out = run_bench("import_bench.py", "--orders", "60", "--batch", "20", "--round", "1")
    assert out.count("row counts equal in the") == 2
    for backend in ("sqlite", "postgresql"):
        assert re.search(rf"^{backend} +60 ", out, re.MULTILINE), out


def test_relay_bench_checks_hold_on_both_backends(pg_url: str) -> None:
    """bench/relay_bench.py on 30 refunds: each refunded, its tender succeeded and its gateway
    call recorded once, every outbox message done, one sandbox refund per key, on each
    backend."""
    out = run_bench("relay_bench.py", "--refunds", "30", "--batch", "8", "--round", "1")
    for backend in ("sqlite", "postgresql"):
        assert re.search(rf"^{backend} +30 ", out, re.MULTILINE), out
        assert f"{backend}: 30 refunds refunded, their tenders succeeded once" in out
        assert f"{backend}: 30 gateway calls recorded (one per tender)" in out
        assert f"{backend}: the sandbox created one refund per key (30 keys, 60 " in out
    assert out.count("outbox messages per second per relay process") == 2
