"""`refundry import` (orders/s) beside the bare driver's executemany of the same rows, batched the
same way, in the same run.

For each backend:
  * generates --orders import lines, a mix like the demo shop's (refundry/demo/shop.py: 2–4
    lines, a 满减 discount, a coupon the customer's envelope tells of and the order uses, a gift,
    a 满返 cashback, a card and a points tender, earned points and growth), 1–3 orders per
    customer, each line an envelope ``{"order": …, "customer": …}``;
  * **refundry**: ``import_lines`` (what `refundry import` runs, in process) into a freshly
    migrated database (a SQLite file; a PostgreSQL database), one call (one transaction) per
    --batch lines; every INSERT it sends is recorded at the DB-API cursor (a listener: a few
    µs per statement, charged to refundry);
  * **bare**: those very inserted rows, per batch, through sqlite3 / psycopg alone into an empty
    migrated copy of the schema: one ``executemany`` per statement text (tables in foreign-key
    order), one transaction per batch; no reads, no updates, no parsing, no audit signing;
  * interleaves them in rounds of --round batches (refundry's batches, then the bare replay of
    the same batches), so the machine's drift hits both alike, and prints each side's orders/s
    per round (min / median / max), the totals and the ratio of the totals; checks both sides
    hold the same number of rows in every table the bare side wrote.

Goal (issue 15 point 4): refundry ≥ 0.3 of the bare rate on each backend.
Usage: python bench/import_bench.py [--orders 100000] [--batch 500] [--round 10]
                                    [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, event

from refundry.demo.shop import START, TIERS, _order
from refundry.domain.policy import Policy
from refundry.services.orders.bulk_import import import_lines
from refundry.store.engine import make_engine
from refundry.store.tables import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apply_baseline import TABLES, pg_connect, pg_settings, row_counts, sqlite_connect, sqlite_path
from apply_bench import Databases
from fsync_rate import fsync_rate

POLICY = Policy()
NOW = START + timedelta(days=3)
_ORDER = {t.name: i for i, t in enumerate(metadata.sorted_tables)}


def import_lines_of(n: int, seed: int = 20261111) -> list[str]:
    """n import lines: the demo shop's orders, 1–3 per customer, each with its envelope."""
    rng = random.Random(seed)
    out: list[str] = []
    c = 0
    while len(out) < n:
        cid = f"c{c:07d}"
        for k in range(rng.randint(1, 3)):
            if len(out) >= n:
                break
            doc = _order(rng, k, cid, card=f"ali-{cid}-{k}")
            customer: dict[str, Any] = {
                "locale": "zh-CN" if c % 3 else "en",
                "points_balance": 3000,
                "growth_value": 1200,
                "tier_table": TIERS,
                "coupons": [
                    {
                        "id": f"CP-{cid}-{k}",
                        "value": 2000,
                        "valid_until": (START + timedelta(days=60)).isoformat(),
                    }
                ],
            }
            if c % 7 == 0:
                customer["risk_flags"] = ["frequent_refunder"]
            out.append(json.dumps({"order": doc, "customer": customer}, ensure_ascii=False))
        c += 1
    return out


class InsertCapture:
    """Every INSERT an engine sends, as (statement, many, parameters)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, bool, Any]] = []

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "after_cursor_execute", self._seen)

    def _seen(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            self.writes.append((statement, many, parameters))

    def take(self) -> list[tuple[str, bool, Any]]:
        done, self.writes = self.writes, []
        return done


def _table_of(statement: str) -> str:
    return statement.split()[2].strip('"')


def grouped(writes: list[tuple[str, bool, Any]]) -> list[tuple[str, list[Any]]]:
    """One batch's inserts as (statement, rows): one executemany per statement text, tables in
    foreign-key order, each text's rows in the order refundry sent them."""
    by_text: dict[str, list[Any]] = {}
    for statement, many, params in writes:
        rows = by_text.setdefault(statement, [])
        if many:
            rows.extend(params)
        else:
            rows.append(params)
    return sorted(by_text.items(), key=lambda item: _ORDER[_table_of(item[0])])


@dataclass
class Side:
    rounds: list[tuple[int, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return sum(n for n, _ in self.rounds) / sum(s for _, s in self.rounds)

    def spread(self) -> tuple[float, float, float]:
        rates = [n / s for n, s in self.rounds]
        return min(rates), statistics.median(rates), max(rates)


@dataclass
class Result:
    backend: str
    orders: int
    refundry: Side
    bare: Side
    rows: int


def run(dbs: Databases, backend: str, lines: list[str], batch: int, per_round: int) -> Result:
    url = dbs.migrated(backend, "refundry")
    bare_url = dbs.migrated(backend, "bare")
    before = row_counts(bare_url)
    engine = make_engine(url)
    capture = InsertCapture()
    capture.attach(engine)
    if backend == "sqlite":
        bare: Any = sqlite_connect(sqlite_path(bare_url))
        cur = bare.cursor()

        def begin() -> None:
            cur.execute("BEGIN IMMEDIATE")

        def commit() -> None:
            cur.execute("COMMIT")
    else:
        bare = pg_connect(bare_url)
        cur = bare.cursor()

        def begin() -> None:
            pass

        commit = bare.commit
    ours, theirs = Side(), Side()
    chunk = batch * per_round
    for start in range(0, len(lines), chunk):
        part = lines[start : start + chunk]
        batches = []
        spent = 0.0
        for at in range(0, len(part), batch):  # one call per batch: its inserts, captured
            t0 = time.perf_counter()
            report = import_lines(engine, part[at : at + batch], policy=POLICY, now=NOW)
            spent += time.perf_counter() - t0
            assert report.ingested == len(part[at : at + batch]) and not report.bad, report.bad
            batches.append(grouped(capture.take()))
        ours.rounds.append((len(part), spent))
        t2 = time.perf_counter()
        for writes in batches:
            begin()
            for statement, rows in writes:
                cur.executemany(statement, rows)
            commit()
        theirs.rounds.append((len(part), time.perf_counter() - t2))
    engine.dispose()
    bare.close()
    mine, copied = row_counts(url), row_counts(bare_url)
    written = [t for t in TABLES if copied[t] != before[t]]
    for t in written:
        assert mine[t] == copied[t], (t, mine[t], copied[t])
    print(f"{backend}: row counts equal in the {len(written)} tables the bare side wrote")
    return Result(backend, len(lines), ours, theirs, sum(copied[t] - before[t] for t in written))


def report(results: list[Result]) -> None:
    print(
        f"{'backend':10s} {'orders':>7s} {'rows':>8s} {'refundry/s':>10s} "
        f"{'min/median/max per round':>26s} {'bare/s':>8s} {'min/median/max per round':>26s} "
        f"{'ratio':>6s}"
    )
    for r in results:
        a, b = r.refundry.spread(), r.bare.spread()
        print(
            f"{r.backend:10s} {r.orders:7d} {r.rows:8d} {r.refundry.rate:10,.0f} "
            f"{a[0]:8,.0f} /{a[1]:8,.0f} /{a[2]:8,.0f} {r.bare.rate:8,.0f} "
            f"{b[0]:8,.0f} /{b[1]:8,.0f} /{b[2]:8,.0f} {r.refundry.rate / r.bare.rate:6.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--round", type=int, default=10, help="batches per round")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    lines = import_lines_of(args.orders)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as tmp:
        print(f"disk fsync rate: {fsync_rate(directory=tmp):,.0f}/s (4 KiB + fsync in {tmp})")
        if "postgresql" in backends:
            print(f"postgresql: {pg_settings()}")
        dbs = Databases(tmp)
        try:
            results = [run(dbs, b, lines, args.batch, args.round) for b in backends]
        finally:
            dbs.close()
    report(results)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
