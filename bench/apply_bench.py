"""Refunds applied per second (apply_refund; and preview + apply) beside the bare driver.

For each backend (a fresh SQLite file in a temp dir; a throwaway PostgreSQL database):
  * seeds orders with ingest_order: 4 lines, a 满减 discount and a coupon, a card and a points
    tender, earned points and growth, an order_cashback (满返) campaign with a granted reward;
  * applies --refunds refunds (after 10 untimed warm-up ones) with preview_refund + apply_refund,
    mixing full refunds (coupon returned, reward clawed back), partial refunds of the cheapest
    line (reward kept) and partial refunds of the dearest line (reward clawed back);
  * refundry is timed on its own, with no listener on its engine; a twin run of the same
    refunds on a second clone, untimed, records each INSERT/UPDATE at the DB-API cursor (an
    engine listener: it cost ~0.15 ms a refund on SQLite, ~8%, when it ran in the timed loop);
  * baseline: on a third clone of the database as it was before the refunds, the very
    INSERT/UPDATE statements the twin run executed, through sqlite3 / psycopg alone, one
    transaction per refund (BEGIN IMMEDIATE on SQLite, same pragmas), no reads;
    the sides take turns, 25 refunds each, so that drift of the machine hits both alike;
  * prints rows inserted (count(*) after - before) and updated (cursor row counts) per table on
    both sides (asserted equal, and the twin's and the baseline's databases must end identical;
    the timed run must have inserted the same rows as its twin), refunds/s, the ratio, and where
    refundry's time goes (statements and time inside the driver, counted in the twin run).
History check (--history-check): one customer with 10 earlier orders and one with 10,000 (real
ingest_order rows, seeded on SQLite and COPYed to PostgreSQL), then time per refund of new orders
of each, interleaved, and the ratio 10,000 / 10; also the small customer in a shop without the
10,000 orders (catches costs that grow with the shop rather than the customer) and SQLite's full
table scans on the path. --profile prints cProfile's top functions of the first backend's loop.

The goal (issue #3: at least half the bare driver's rate) is judged on applying: apply_refund,
the one service call that reads the plan's inputs under the order's lock, computes the plan,
checks it against the previewed plan hash and writes everything. By default (--cold-apply) the
per-process memos (previewed plans, parsed orders, snapshots) are emptied, untimed, between each
preview and its apply, so apply computes everything again, as when the preview ran in another
process; --no-cold-apply keeps them (apply then finds its preview's plan). The preview's own time
is reported too (preview + apply), without a goal.

Usage: python bench/apply_bench.py [--refunds 300] [--backend sqlite|postgresql|both]
                                   [--history-check/--no-history-check] [--profile]
                                   [--cold-apply/--no-cold-apply]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event

from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.refunds.memo import forget_all
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.migrate import upgrade

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apply_baseline import (
    TABLES,
    Write,
    WriteCapture,
    clone_sqlite,
    content_digest,
    copy_sqlite_to_pg,
    pg_connect,
    pg_create,
    pg_drop,
    pg_settings,
    replay_pg,
    replay_sqlite,
    row_counts,
    sqlite_connect,
    sqlite_path,
)
from fsync_rate import fsync_rate

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
POLICY = Policy()
WARMUP = 10
CHUNK = 25  # refunds per round of the throughput run (see throughput)
CUSTOMERS = 20
HISTORY_SMALL, HISTORY_LARGE = 10, 10_000
PRICES = (30000, 25000, 20000, 15000)  # L1..L4, one unit each
# full: every line (coupon comes back, reward clawed back); L4: the cheapest line (the kept
# basket still earns the 满减 and the 满返); L1: the dearest line (the 满返 reward is clawed back).
MIX = (("L1", "L2", "L3", "L4"), ("L4",), ("L1",))
COLD_APPLY = True  # --cold-apply (the default) / --no-cold-apply


def order_envelope(order_id: str, customer_id: str) -> dict[str, Any]:
    """An import line: the order and the customer's opening state (used if it is new)."""
    coupon = f"CP-{order_id}"
    lines = [
        {
            "id": f"L{i}",
            "sku": f"SKU-{i}",
            "title": f"Item {i}",
            "merchant_id": f"m-{i % 2}",
            "quantity": 1,
            "unit_price": price,
        }
        for i, price in enumerate(PRICES, 1)
    ]
    ids = [ln["id"] for ln in lines]
    paid = sum(PRICES) - 10000 - 3000
    return {
        "order": {
            "id": order_id,
            "customer_id": customer_id,
            "currency": "CNY",
            "status": "delivered",
            "paid_at": "2026-11-20T10:00:00+08:00",
            "lines": lines,
            "adjustments": [
                {
                    "id": "A-MJ",
                    "kind": "threshold_discount",
                    "amount": 10000,
                    "lines": ids,
                    "source": {"type": "campaign", "id": "MJ-600-100"},
                },
                {
                    "id": "A-CP",
                    "kind": "coupon",
                    "amount": 3000,
                    "lines": ids[:2],
                    "source": {"type": "coupon", "id": coupon},
                },
            ],
            "tenders": [
                {
                    "id": "T-CARD",
                    "kind": "external",
                    "method": "card",
                    "amount": paid - 2000,
                    "gateway_txn_id": f"ch_{order_id}",
                },
                {"id": "T-PTS", "kind": "points", "amount": 2000, "points": 2000},
            ],
            "points_earned": {"points": 770, "status": "granted"},
            "growth_value": 770,
            "campaigns": [
                {
                    "id": "MJ-600-100",
                    "kind": "threshold_discount",
                    "measure": "list",
                    "threshold": 60000,
                },
                {
                    "id": "MF-600-50",
                    "kind": "order_cashback",
                    "measure": "paid",
                    "tiers": [{"threshold": 60000, "reward": 5000}],
                },
            ],
            "rewards": [
                {
                    "id": f"RW-{order_id}",
                    "campaign_id": "MF-600-50",
                    "amount": 5000,
                    "status": "granted",
                }
            ],
        },
        "customer": {
            "points_balance": 20_000_000,  # never short, so every customer's plans look alike
            "growth_value": 10_000,
            "tier_table": [
                {"name": "regular", "min_growth": 0},
                {"name": "gold", "min_growth": 5000},
            ],
            "coupons": [{"id": coupon, "value": 3000, "valid_until": "2026-12-31T00:00:00+08:00"}],
        },
    }


def ingest_all(engine: Engine, orders: Sequence[tuple[str, str]], chunk: int = 500) -> None:
    for start in range(0, len(orders), chunk):
        with UnitOfWork(engine) as uow:
            for order_id, customer_id in orders[start : start + chunk]:
                ingest_order(
                    uow.conn, order_envelope(order_id, customer_id), policy=POLICY, now=NOW
                )
            uow.commit()


def refund_request(order_id: str, i: int) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "reason": "changed_mind",
        "lines": [{"line_id": ln, "quantity": 1} for ln in MIX[i % len(MIX)]],
    }


def apply_one(engine: Engine, order_id: str, i: int) -> tuple[float, float]:
    """preview + apply of refund ``i`` of the mix on ``order_id``: (preview s, apply s)."""
    request = refund_request(order_id, i)
    t0 = time.perf_counter()
    plan = preview_refund(engine, order_id=order_id, request=request, policy=POLICY, now=NOW)
    if COLD_APPLY:  # as if the apply reached another process (untimed)
        forget_all()
    t1 = time.perf_counter()
    result = apply_refund(
        engine,
        order_id=order_id,
        request=request,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key=f"bench:{order_id}:{i}",
        actor="agent:bench",
        now=NOW,
        policy=POLICY,
    )
    t2 = time.perf_counter()
    assert not result.replayed and result.plan["status"] == "ready"
    return t1 - t0, t2 - t1


# --- throughput ---------------------------------------------------------------------------------


@dataclass
class Throughput:
    backend: str
    refunds: int
    refundry_s: float  # preview + apply
    apply_s: float  # apply only
    bare_s: float
    statements: Counter[str]  # refundry's, all refunds, by verb
    in_driver_s: float  # refundry's time inside DB-API execute calls, all refunds
    inserted: tuple[dict[str, int], dict[str, int]]  # refundry's twin run, baseline
    timed_inserted: dict[str, int]  # refundry's timed (uninstrumented) run
    updated: tuple[Counter[str], Counter[str]]
    same_content: bool
    writes: list[list[Write]]

    @property
    def rate(self) -> float:
        return self.refunds / self.refundry_s

    @property
    def apply_rate(self) -> float:
        return self.refunds / self.apply_s

    @property
    def bare_rate(self) -> float:
        return self.refunds / self.bare_s


class Databases:
    """Fresh databases in a temp dir / on the local PostgreSQL server; all dropped at the end."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.prefix = f"refundry_bench_{uuid.uuid4().hex[:8]}"
        self.pg_names: list[str] = []

    def sqlite(self, name: str) -> str:
        return f"sqlite:///{os.path.join(self.tmp, name + '.sqlite')}"

    def pg(self, name: str, template: str | None = None) -> str:
        full = f"{self.prefix}_{name}"
        self.pg_names.append(full)
        return pg_create(full, template)

    def migrated(self, backend: str, name: str) -> str:
        url = self.sqlite(name) if backend == "sqlite" else self.pg(name)
        upgrade(url)
        return url

    def clone(self, backend: str, url: str, name: str) -> str:
        """A copy of ``url`` (its engines must be disposed)."""
        if backend == "sqlite":
            dst = self.sqlite(name)
            clone_sqlite(sqlite_path(url), sqlite_path(dst))
            return dst
        return self.pg(name, template=url.rsplit("/", 1)[1])

    def close(self) -> None:
        if self.pg_names:
            pg_drop(self.pg_names)


def counts_delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before[t] for t in TABLES}


def throughput(
    dbs: Databases, backend: str, n: int, profile: cProfile.Profile | None
) -> Throughput:
    url = dbs.migrated(backend, "throughput")
    engine = make_engine(url)
    order_ids = [f"o-{i:06d}" for i in range(n + WARMUP)]
    ingest_all(engine, [(oid, f"c-{i % CUSTOMERS:03d}") for i, oid in enumerate(order_ids)])
    engine.dispose()
    base_url = dbs.clone(backend, url, "baseline")
    twin_url = dbs.clone(backend, url, "twin")

    before = row_counts(url), row_counts(twin_url), row_counts(base_url)
    engine = make_engine(url)  # timed: no listener
    twin = make_engine(twin_url)  # untimed: records the writes the baseline replays
    capture = WriteCapture()
    capture.attach(twin)
    # One bare connection for the whole run (psycopg keeps its prepared statements per
    # connection, as refundry's pool does).
    replay: Any = replay_sqlite if backend == "sqlite" else replay_pg
    bare = sqlite_connect(sqlite_path(base_url)) if backend == "sqlite" else pg_connect(base_url)
    refundry_s = apply_s = bare_s = 0.0
    base_updated: Counter[str] = Counter()
    # In rounds of CHUNK refunds: refundry's, then the bare driver's replay of those very
    # writes, so that the machine's drift (other tenants, the disk) hits both sides alike.
    for start in range(0, len(order_ids), CHUNK):
        if profile is not None and start >= WARMUP:
            profile.enable()
        for i in range(start, min(start + CHUNK, len(order_ids))):
            preview_s, applied_s = apply_one(engine, order_ids[i], i)
            if i >= WARMUP:
                refundry_s += preview_s + applied_s
                apply_s += applied_s
        if profile is not None:
            profile.disable()
        for i in range(start, min(start + CHUNK, len(order_ids))):
            capture.begin()
            apply_one(twin, order_ids[i], i)
            capture.end()
        chunk = capture.refunds[start:]
        seconds, updated = replay(bare, chunk, max(0, min(WARMUP - start, len(chunk))))
        bare_s += seconds
        base_updated.update(updated)
    capture.detach(twin)
    engine.dispose()
    twin.dispose()
    bare.close()
    timed_inserted = counts_delta(row_counts(url), before[0])
    ref_inserted = counts_delta(row_counts(twin_url), before[1])
    base_inserted = counts_delta(row_counts(base_url), before[2])
    return Throughput(
        backend=backend,
        refunds=n,
        refundry_s=refundry_s,
        apply_s=apply_s,
        bare_s=bare_s,
        statements=capture.verbs,
        in_driver_s=capture.in_driver,
        inserted=(ref_inserted, base_inserted),
        timed_inserted=timed_inserted,
        updated=(capture.updated_rows(), base_updated),
        same_content=content_digest(twin_url) == content_digest(base_url),
        writes=capture.refunds,
    )


# --- history ------------------------------------------------------------------------------------


@dataclass
class History:
    backend: str
    small: list[float]  # seconds per refund (preview + apply), customer with 10 earlier orders
    large: list[float]  # … with 10,000
    small_apply: list[float]
    large_apply: list[float]
    alone: list[float]  # the small customer's refunds in a shop without the large customer
    scans: list[str]

    @staticmethod
    def _ratio(a: list[float], b: list[float]) -> float:
        """The median of b[i] / a[i]: each pair ran back to back, under the same disk weather."""
        return statistics.median(y / x for x, y in zip(a, b, strict=True))

    @property
    def ratio(self) -> float:
        return self._ratio(self.small, self.large)

    @property
    def apply_ratio(self) -> float:
        return self._ratio(self.small_apply, self.large_apply)

    @property
    def shop_ratio(self) -> float:
        return self._ratio(self.alone, self.large)

    @property
    def medians_ratio(self) -> float:
        return statistics.median(self.large) / statistics.median(self.small)


@dataclass
class HistorySeed:
    small_shop: str  # SQLite: the small customer's orders only
    big_shop: str  # the same, then the large customer's
    new_small: list[str]  # the orders whose refunds are timed
    new_large: list[str]
    seconds: float


def seed_history(dbs: Databases, new: int) -> HistorySeed:
    """Seeded on SQLite with ingest_order (500 orders a transaction); PostgreSQL gets a COPY of
    these very rows. Each customer's earlier orders come first, then its new ones."""
    small, large = "c-hist-10", "c-hist-10000"
    new_small = [f"n10-{i:03d}" for i in range(new)]
    new_large = [f"n10k-{i:03d}" for i in range(new)]
    start = time.perf_counter()
    url = dbs.migrated("sqlite", "history_seed")
    engine = make_engine(url)
    earlier = [(f"h10-{i:05d}", small) for i in range(HISTORY_SMALL)]
    ingest_all(engine, earlier + [(oid, small) for oid in new_small])
    engine.dispose()
    small_shop = dbs.clone("sqlite", url, "history_seed_small")
    engine = make_engine(url)
    earlier = [(f"h10k-{i:05d}", large) for i in range(HISTORY_LARGE)]
    ingest_all(engine, earlier + [(oid, large) for oid in new_large])
    engine.dispose()
    return HistorySeed(small_shop, url, new_small, new_large, time.perf_counter() - start)


def sqlite_scans(url: str, order_id: str) -> list[str]:
    """Tables a preview + apply of ``order_id`` reads by full scan (EXPLAIN QUERY PLAN)."""
    engine = make_engine(url)
    seen: list[tuple[str, Any]] = []

    def on_execute(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not many:
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", on_execute)
    apply_one(engine, order_id, 1)
    event.remove(engine, "before_cursor_execute", on_execute)
    engine.dispose()
    conn = sqlite_connect(sqlite_path(url))
    scans = set()
    for statement, params in seen:
        for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params):
            detail = str(row[-1])
            if detail.startswith("SCAN ") and "CONSTANT" not in detail:
                where = statement.split("WHERE", 1)[-1].strip().split("\n")[0][:60]
                scans.add(f"{detail} (WHERE {where})")
    conn.close()
    return sorted(scans)


def history_db(dbs: Databases, backend: str, seed_url: str, name: str) -> str:
    if backend == "sqlite":
        return dbs.clone("sqlite", seed_url, name)
    url = dbs.migrated("postgresql", name)
    src = make_engine(seed_url)
    copy_sqlite_to_pg(src, url)
    src.dispose()
    return url


def history(dbs: Databases, backend: str, seed: HistorySeed) -> History:
    alone_url = history_db(dbs, backend, seed.small_shop, "history_small")
    url = history_db(dbs, backend, seed.big_shop, "history")
    alone_engine, engine = make_engine(alone_url), make_engine(url)
    h = History(backend, [], [], [], [], [], [])
    for i, (a, b) in enumerate(zip(seed.new_small, seed.new_large, strict=True)):
        # Interleaved so that drift (page cache, checkpoints, the disk) hits all three alike.
        pa, aa = apply_one(engine, a, i)
        pb, ab = apply_one(engine, b, i)
        pc, ac = apply_one(alone_engine, a, i)
        if i >= len(MIX):  # the first round of the mix warms the caches
            h.small.append(pa + aa)
            h.small_apply.append(aa)
            h.large.append(pb + ab)
            h.large_apply.append(ab)
            h.alone.append(pc + ac)
    engine.dispose()
    alone_engine.dispose()
    if backend == "sqlite":
        h.scans = sqlite_scans(url, "h10k-00000")  # an earlier order: the new ones are done
    return h


# --- report -------------------------------------------------------------------------------------


def print_throughput(results: list[Throughput]) -> None:
    print()
    print(
        f"{'backend':11s} {'refunds':>7s} {'refundry/s':>11s} {'(apply only)':>12s} "
        f"{'bare driver/s':>13s} {'ratio':>6s} {'(apply)':>8s}  goal: (apply) ≥ 0.50"
    )
    for r in results:
        ratio = r.rate / r.bare_rate
        applied = r.apply_rate / r.bare_rate
        print(
            f"{r.backend:11s} {r.refunds:7d} {r.rate:11.1f} {r.apply_rate:12.1f} "
            f"{r.bare_rate:13.1f} {ratio:6.3f} {applied:8.3f}  "
            f"{'met' if applied >= 0.5 else 'NOT met'}"
        )
    print("  refundry/s: preview_refund + apply_refund; (apply only): apply_refund alone,")
    print(
        "  "
        + (
            "cold: the preview's plan, order and snapshot not in memory (--cold-apply)"
            if COLD_APPLY
            else "warm: finding its preview's plan in memory (--no-cold-apply)"
        )
        + ";"
    )
    print("  bare driver/s: the same INSERT/UPDATE statements, sqlite3/psycopg, no reads, no plan")
    for r in results:
        n = r.refunds + WARMUP
        verbs = ", ".join(f"{v / n:.1f} {k.strip()}" for k, v in r.statements.most_common())
        writes = sum(len(w) for w in r.writes) / n
        per = 1e3 / r.rate
        inside = r.in_driver_s * 1e3 / n
        print(
            f"  {r.backend}: refundry {per:.2f} ms a refund: {sum(r.statements.values()) / n:.1f}"
            f" statements ({verbs}), {inside:.2f} ms inside DB-API execute calls (twin run), "
            f"{per - inside:.2f} ms elsewhere (plan, SQLAlchemy, commit"
            f"{'; writes pipelined: their waits fall here' if r.backend == 'postgresql' else ''}); "
            f"bare driver {1e3 / r.bare_rate:.2f} ms: {writes:.1f} statements + COMMIT"
        )
    print()
    print(f"{'rows written':18s}" + "".join(f"{r.backend:>26s}" for r in results))
    print(f"{'(refundry/bare)':18s}" + f"{'inserted':>13s}{'updated':>13s}" * len(results))
    for t in TABLES:
        if not any(r.inserted[0][t] or r.updated[0][t] for r in results):
            continue
        cells = [
            f"{f'{r.inserted[0][t]}/{r.inserted[1][t]}':>13s}"
            f"{f'{r.updated[0][t]}/{r.updated[1][t]}':>13s}"
            for r in results
        ]
        print(f"{t:18s}" + "".join(cells))
    for r in results:
        assert r.inserted[0] == r.inserted[1], (r.backend, r.inserted)
        assert r.updated[0] == r.updated[1], (r.backend, r.updated)
        assert r.same_content, f"{r.backend}: the two databases ended with different content"
        assert r.timed_inserted == r.inserted[0], (r.backend, r.timed_inserted, r.inserted[0])
        ins, upd = sum(r.inserted[0].values()), sum(r.updated[0].values())
        n = r.refunds + WARMUP
        print(
            f"  {r.backend}: {ins} rows inserted + {upd} updated on each side for {n} refunds "
            f"({(ins + upd) / n:.1f} rows a refund, {WARMUP} of them untimed warm-up); "
            "counts equal, contents identical; the timed run inserted the same rows"
        )


def print_history(results: list[History], seed_s: float, new: int) -> None:
    print()
    print(
        f"history check: one customer with {HISTORY_SMALL} earlier orders, one with "
        f"{HISTORY_LARGE:,} (seeded with ingest_order in {seed_s:.0f} s, PostgreSQL gets a COPY);"
    )
    print(
        f"  {new} new orders each, refunded interleaved (first {len(MIX)} untimed); "
        "'10 alone': the same refunds in a shop without the 10,000 orders"
    )
    print(
        f"{'backend':11s} {'ms/refund 10':>13s} {'10k':>7s} {'ratio':>6s} {'(med.)':>7s} "
        f"{'(apply)':>8s}  goal ≤ 1.20  {'10 alone':>8s} {'10k/alone':>9s}"
    )
    for h in results:
        print(
            f"{h.backend:11s} {statistics.median(h.small) * 1e3:13.2f} "
            f"{statistics.median(h.large) * 1e3:7.2f} {h.ratio:6.2f} {h.medians_ratio:7.2f} "
            f"{h.apply_ratio:8.2f}  {'met' if h.ratio <= 1.2 else 'NOT met':11s} "
            f"{statistics.median(h.alone) * 1e3:8.2f} {h.shop_ratio:9.2f}"
        )
    print(
        "  ms: medians of preview + apply; ratio: median of the 10k/10 ratios of refunds run back"
    )
    print("  to back; (med.): ratio of the medians; (apply): as ratio, apply_refund alone")
    for h in results:
        if h.scans:
            print(f"  {h.backend}: full table scans in preview + apply (EXPLAIN QUERY PLAN):")
            for s in h.scans:
                print(f"    {s}")


def print_profile(profile: cProfile.Profile, backend: str) -> None:
    print(f"\ncProfile of the timed refundry loop on {backend} (top 20 by internal time):")
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(20)
    print("top 20 by cumulative time:")
    stats.sort_stats("cumulative").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refunds", type=int, default=300, help="timed refunds per backend")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--history-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"time refunds for customers with {HISTORY_SMALL} and {HISTORY_LARGE:,} orders",
    )
    parser.add_argument("--history-refunds", type=int, default=60, help="new orders per customer")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the first backend's refundry loop"
    )
    parser.add_argument(
        "--cold-apply",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="empty the per-process memos between each preview and its apply (untimed), as when "
        "the preview ran in another process (default); --no-cold-apply keeps them",
    )
    args = parser.parse_args()
    global COLD_APPLY
    COLD_APPLY = args.cold_apply
    print(
        "--cold-apply: apply computes the plan again (memos emptied after each preview)"
        if COLD_APPLY
        else "--no-cold-apply: apply finds the plan its preview computed in this process"
    )
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    with tempfile.TemporaryDirectory(prefix="refundry-apply-bench-") as tmp:
        dbs = Databases(tmp)
        try:
            rate = fsync_rate(directory=tmp)
            print(f"disk fsync rate: {rate:,.0f}/s (4 KiB overwrite + fsync in {tmp})")
            if "postgresql" in backends:
                print(f"postgresql server: {pg_settings()}")
            profile = cProfile.Profile() if args.profile else None
            results = []
            for k, backend in enumerate(backends):
                results.append(throughput(dbs, backend, args.refunds, profile if k == 0 else None))
            print_throughput(results)
            if args.history_check:
                seed = seed_history(dbs, args.history_refunds)
                hist = [history(dbs, b, seed) for b in backends]
                print_history(hist, seed.seconds, args.history_refunds)
            if profile is not None:
                print_profile(profile, backends[0])
        finally:
            dbs.close()


if __name__ == "__main__":
    main()
