"""Refunds per second from 1, 2 and 4 processes applying for different customers, PostgreSQL.

Issue #15 point 5: with one audit chain, every refund's transaction locked the chain's single
head row from its audit write to its commit, so parallel applies queued on it. With a chain per
customer they lock only their own customer's head. Both are measured in the same run on the
same database:

  * ``per-customer``: refundry as it is — each refund's entries go to its customer's chain;
  * ``one chain``: the same code with every entry sent to one chain (``chain_of`` replaced in
    the worker processes by a function naming the system chain): the single head of before,
    everything else identical.

Each order belongs to a customer of its own, so nothing but the audit head is shared between
processes. For each mode, each process count (1, 2, 4) and each of --repeats rounds, fresh
orders are ingested beforehand (untimed); each worker process (spawned, its own engine) applies
3 untimed warm-up refunds, waits at a barrier, then previews and applies --refunds full refunds
(``apply_bench.apply_one``, cold apply). The rate is all the processes' refunds over the wall
time from the first start to the last end (CLOCK_MONOTONIC, shared by the processes). The
modes take turns at each process count within each round, so drift of the machine hits both
alike. Prints min / median / max refunds/s, the speed-up over one process within each round
(median over rounds), the time a refund spent at its chain's head (the ``SELECT … FOR UPDATE``
timed in the workers: waiting for another transaction's lock, and for the CPU on a loaded
machine), the mean number of sessions waiting for a lock (pg_stat_activity sampled every 5 ms
by the parent: lock waits alone, whatever the load), and per-customer / one chain at each
process count (paired by round).

Usage: python bench/parallel_apply_bench.py [--refunds 60] [--repeats 3] [--processes 1,2,4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apply_bench import Databases, apply_one, ingest_all
from sqlalchemy import text

from refundry.services.audit import chain as audit_chain
from refundry.store.engine import make_engine

WARMUP = 3
MODES = ("per-customer", "one chain")


def _one_chain(_customer_id: str | None) -> str:
    return audit_chain.SYSTEM_CHAIN


class TimedHead:
    """The head's ``SELECT … FOR UPDATE`` with the time spent in it added up: on PostgreSQL,
    the time a transaction waited for another's head lock (plus one indexed read)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.waited = 0.0

    def first(self, conn: Any, params: Any = None) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.first(conn, params)
        finally:
            self.waited += time.perf_counter() - t0


def worker(url: str, orders: list[str], one_chain: bool, barrier: Any, out: Any) -> None:
    if one_chain:
        audit_chain.chain_of = _one_chain  # AuditTrail.record looks it up at each call
    head = TimedHead(audit_chain._HEAD_LOCKED)
    audit_chain._HEAD_LOCKED = head  # type: ignore[assignment]  # flush reads it at each call
    engine = make_engine(url)
    for order_id in orders[:WARMUP]:
        apply_one(engine, order_id, 0)
    barrier.wait()
    head.waited = 0.0
    start = time.monotonic()
    for order_id in orders[WARMUP:]:
        apply_one(engine, order_id, 0)
    end = time.monotonic()
    engine.dispose()
    out.put((start, end, len(orders) - WARMUP, head.waited))


def _lock_waiters(url: str, stop: threading.Event, seen: list[int]) -> None:
    """Sample, every 5 ms until ``stop``, how many of the database's sessions wait for a
    lock (``pg_stat_activity.wait_event_type = 'Lock'``): a row lock held by another
    transaction, whatever the machine's load does to the rest."""
    engine = make_engine(url)
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as conn:
        while not stop.is_set():
            seen.append(int(conn.execute(query).scalar_one()))
            conn.rollback()
            stop.wait(0.005)
    engine.dispose()


def run(url: str, batches: list[list[str]], one_chain: bool) -> tuple[float, float, float]:
    """(refunds/s, ms spent at the head per refund, mean sessions waiting for a lock)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(batches))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(url, batch, one_chain, barrier, out)) for batch in batches
    ]
    for p in procs:
        p.start()
    stop, seen = threading.Event(), []  # type: ignore[var-annotated]
    sampler = threading.Thread(target=_lock_waiters, args=(url, stop, seen))
    sampler.start()
    results = [out.get(timeout=600) for _ in procs]
    stop.set()
    sampler.join()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a worker failed (exit {p.exitcode})")
    first = min(r[0] for r in results)
    last = max(r[1] for r in results)
    refunds = sum(r[2] for r in results)
    waiting = sum(seen) / len(seen) if seen else 0.0
    return refunds / (last - first), 1000 * sum(r[3] for r in results) / refunds, waiting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refunds", type=int, default=60, help="timed refunds per process")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    per = args.refunds + WARMUP
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(tmp)
        try:
            url = dbs.migrated("postgresql", "parallel")
            plan: list[tuple[int, str, int, list[list[str]]]] = []
            orders: list[tuple[str, str]] = []
            for r in range(args.repeats):
                for n in counts:
                    for mode in MODES:
                        batches = []
                        for p in range(n):
                            tag = f"{r}-{MODES.index(mode)}-{n}-{p}"
                            ids = [f"o-{tag}-{k}" for k in range(per)]
                            orders += [(o, "c" + o[1:]) for o in ids]  # a customer per order
                            batches.append(ids)
                        plan.append((r, mode, n, batches))
            started = time.perf_counter()
            engine = make_engine(url)
            ingest_all(engine, orders)
            engine.dispose()
            print(f"seeded {len(orders)} orders in {time.perf_counter() - started:.0f} s")
            rates: dict[tuple[str, int], list[float]] = {}
            waits: dict[tuple[str, int], list[float]] = {}
            locked: dict[tuple[str, int], list[float]] = {}
            for r, mode, n, batches in plan:
                rate, wait, waiting = run(url, batches, mode == "one chain")
                locked.setdefault((mode, n), []).append(waiting)
                rates.setdefault((mode, n), []).append(rate)
                waits.setdefault((mode, n), []).append(wait)
                load = os.getloadavg()[0]
                print(
                    f"  round {r + 1} {mode:>12} {n} process(es): {rate:7.1f} refunds/s, "
                    f"{wait:6.2f} ms a refund at the head, {waiting:.2f} sessions waiting for "
                    f"a lock (load {load:.1f})"
                )
        finally:
            dbs.close()
    print()
    cpus = os.cpu_count()
    print(f"PostgreSQL, {args.refunds} refunds per process, {args.repeats} rounds, {cpus} CPUs")
    print(
        f"{'mode':>12} {'processes':>9} {'min':>7} {'median':>7} {'max':>7} {'x one':>6}"
        f" {'head ms':>8} {'waiting':>8}"
    )
    for mode in MODES:
        for n in counts:
            got = rates[(mode, n)]
            # the speed-up within each round (same minutes of the machine), median over rounds
            ups = [a / b for a, b in zip(got, rates[(mode, counts[0])], strict=True)]
            print(
                f"{mode:>12} {n:>9} {min(got):7.1f} {statistics.median(got):7.1f} "
                f"{max(got):7.1f} {statistics.median(ups):6.2f}"
                f" {statistics.median(waits[(mode, n)]):8.2f}"
                f" {statistics.median(locked[(mode, n)]):8.2f}"
            )
    print()
    print("per-customer / one chain, same round and process count: median (min-max)")
    for n in counts:
        pairs = [
            a / b for a, b in zip(rates[("per-customer", n)], rates[("one chain", n)], strict=True)
        ]
        print(
            f"  {n} process(es): {statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})"
        )


if __name__ == "__main__":
    main()
