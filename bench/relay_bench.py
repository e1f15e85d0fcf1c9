"""Gateway refunds delivered per second by the outbox relay, beside a bare loop making the same
HTTP calls to the same gateway sandbox with the same client and concurrency, in the same run.

For each backend:
  * queues --refunds refunds: bench/apply_bench.py's orders ingested on SQLite, then refunded
    in full by one bulk refund job (services/bulk, batches of 500: the rows an apply writes,
    each refund's gateway message, its notification and its refund.applied event in the
    outbox); PostgreSQL gets the same rows by COPY. Untimed;
  * starts the HTTP gateway sandbox (adapters/gateway_http_sandbox.py) in its own process (so
    that it does not share the relay's interpreter), every card captured twice over (the relay's
    refunds and the bare loop's), refunds settling at once (``confirm_after`` 0);
  * builds refundry's relay as the worker does (bootstrap, dev settings, ``relay_concurrency``
    and ``relay_batch`` from --concurrency / --batch) with the HTTP gateway client, and runs it
    in rounds of --round relay rounds; after each, the bare loop makes as many refund calls as
    tenders were settled in it (the same HttpGateway class, its own instance, a thread pool of
    the same size, keys of its own), so that the machine's drift hits both sides alike;
  * with --money-only, the queued notifications and events are marked done first (as if
    another worker delivered them): the relay's rate for the money alone;
  * once every tender is settled, drains the rest of the outbox (the refunded notifications
    and events), timed too: outbox messages per second per relay process is every message the
    relay handled (gateway refunds, notifications, events) over all its time; with
    --no-drain it stops once every tender is settled (a 100,000-refund run leaves 800,000
    notifications and events, which would take longer than the money).

Prints refunds per second (min / median / max per round), the ratio of the totals, seconds
per 100,000 (extrapolated when --refunds is smaller) against the goal of ≤ 300 s (issue 15
point 4), and checks: every refund refunded and its tender succeeded once, one gateway call
recorded per tender, every outbox message done, and the sandbox created one refund per key.

Usage: python bench/relay_bench.py [--refunds 100000] [--concurrency 16] [--batch 100]
                                   [--round 10] [--answers 50] [--money-only] [--no-drain]
                                   [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from refundry.adapters.clock import utc_now
from refundry.adapters.gateway_http import HttpGateway
from refundry.bootstrap import build
from refundry.domain.policy import Policy
from refundry.observability import configure_logging
from refundry.services.bulk.jobs import read_job, run_batch, start_job
from refundry.services.bulk.selection import Selector
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.engine import make_engine
from refundry.store.tables import gateway_calls, outbox, refund_tenders, refunds

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apply_baseline import copy_sqlite_to_pg, pg_settings
from apply_bench import NOW, Databases, ingest_all
from bulk_bench import Side
from fsync_rate import fsync_rate

GOAL_S = 300  # per 100,000 refunds (issue 15 point 4)


@dataclass
class Result:
    backend: str
    relay: Side
    bare: Side
    messages: int  # every outbox message the relay handled
    relay_s: float  # all its time, the drain after the last tender included
    checks: list[str]


# -- the queued refunds --------------------------------------------------------------------


def seed(dbs: Databases, n: int) -> tuple[str, float]:
    """A SQLite database with n orders refunded in full by one bulk job: n refunds queued."""
    start = time.perf_counter()
    url = dbs.migrated("sqlite", "seed")
    engine = make_engine(url)
    ids = [f"o-{i:06d}" for i in range(n)]
    ingest_all(engine, [(oid, f"c-{i % 5000:04d}") for i, oid in enumerate(ids)])
    job = start_job(
        engine,
        selector=Selector(order_ids=tuple(ids)),
        reason="quality_issue",
        policy=Policy(),
        rate=0,
        actor="bench",
        now=NOW,
    ).job
    while job.state != "finished":
        result = run_batch(engine, job, size=500, now=NOW)
        assert result.refunds == result.processed, "every order of the bench refunds"
        job = read_job(engine, job.id)
    engine.dispose()
    return url, time.perf_counter() - start


def backend_db(dbs: Databases, backend: str, sqlite_seed: str) -> str:
    if backend == "sqlite":
        return dbs.clone("sqlite", sqlite_seed, "relay_sqlite")
    url = dbs.migrated("postgresql", "relay")
    src = make_engine(sqlite_seed)
    copy_sqlite_to_pg(src, url)
    src.dispose()
    return url


def leave_money_only(url: str) -> int:
    """Mark the queued notifications and events done (untimed), as if another worker took
    them: what the relay does for the money alone. Returns how many."""
    engine = make_engine(url)
    with UnitOfWork(engine) as uow:
        marked = uow.conn.execute(
            update(outbox)
            .where(outbox.c.topic != "gateway.refund", outbox.c.status == "pending")
            .values(status="done", done_at=NOW)
        ).rowcount
        uow.commit()
    engine.dispose()
    return int(marked)


def gateway_messages(url: str) -> list[dict[str, Any]]:
    engine = make_engine(url)
    with UnitOfWork(engine, readonly=True) as uow:
        payloads = uow.conn.execute(
            select(outbox.c.payload).where(outbox.c.topic == "gateway.refund").order_by(outbox.c.id)
        ).scalars()
        found = [json.loads(p) for p in payloads]
    engine.dispose()
    return found


# -- the gateway sandbox, in its own process -----------------------------------------------


def serve_sandbox(captures: str) -> None:
    """The child: capture what ``captures`` lists, serve, print the URL; on a ``stats`` line,
    print how many refunds each key created."""
    from refundry.adapters.gateway_http_sandbox import serve_sandbox_http
    from refundry.adapters.gateway_sandbox import SandboxGateway

    sandbox = SandboxGateway(clock=utc_now, confirm_after=timedelta(0))
    with open(captures, encoding="utf-8") as f:
        for transaction_id, amount, currency in json.load(f):
            sandbox.capture(transaction_id, amount, currency)
    with serve_sandbox_http(sandbox) as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                created = Counter(
                    r.idempotency_key for r in sandbox.ledger.requests if r.outcome == "created"
                )
                print(json.dumps({"created": dict(created)}), flush=True)


@contextmanager
def sandbox_process(tmp: str, messages: list[dict[str, Any]]) -> Iterator[subprocess.Popen[str]]:
    sums: Counter[tuple[str, str]] = Counter()
    for m in messages:
        sums[m["transaction_id"], m["currency"]] += 2 * m["amount"]  # the relay's + the bare's
    path = os.path.join(tmp, "captures.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump([[tx, amount, cur] for (tx, cur), amount in sums.items()], f)
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve-sandbox", path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def created_per_key(proc: subprocess.Popen[str]) -> dict[str, int]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("stats\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline())["created"])


# -- timing --------------------------------------------------------------------------------


def settled(engine: Any) -> int:
    with UnitOfWork(engine, readonly=True) as uow:
        found = uow.conn.execute(
            select(func.count())
            .select_from(refund_tenders)
            .where(refund_tenders.c.kind == "external", refund_tenders.c.status == "succeeded")
        ).scalar()
    return int(found or 0)


def run(dbs: Databases, backend: str, sqlite_seed: str, args: Any, tmp: str) -> Result:
    url = backend_db(dbs, backend, sqlite_seed)
    if args.money_only:
        print(f"  {backend}: {leave_money_only(url):,} queued notifications and events left out")
    messages = gateway_messages(url)
    with sandbox_process(tmp, messages) as proc:
        assert proc.stdout is not None
        gateway_url = proc.stdout.readline().strip()
        settings = Settings(
            dev=True,
            database_url=url,
            relay_concurrency=args.concurrency,
            relay_batch=args.batch,
            relay_answers_per_transaction=args.answers,
        )
        gateway = HttpGateway(gateway_url, max_connections=args.concurrency)
        runtime = build(settings, gateway=gateway)
        relay = runtime.relay(name="bench-relay")
        bare_gateway = HttpGateway(gateway_url, max_connections=args.concurrency)
        pool = ThreadPoolExecutor(max_workers=args.concurrency)

        def bare_call(m: dict[str, Any]) -> str:
            answer = bare_gateway.refund(
                idempotency_key="bare:" + m["idempotency_key"],
                transaction_id=m["transaction_id"],
                amount=m["amount"],
                currency=m["currency"],
            )
            return answer.status

        ours, theirs = Side(), Side()
        handled, done, relay_s = 0, 0, 0.0
        while done < len(messages):
            t0 = time.perf_counter()
            for _ in range(args.round):
                handled += relay.run_once()
            seconds = time.perf_counter() - t0
            relay_s += seconds
            now_done = settled(runtime.engine)
            n, done = now_done - done, now_done
            ours.rounds.append((n, seconds))
            if n:
                chunk = messages[done - n : done]
                t0 = time.perf_counter()
                statuses = Counter(pool.map(bare_call, chunk))
                theirs.rounds.append((n, time.perf_counter() - t0))
                assert statuses == {"succeeded": n}, statuses
                print(
                    f"  {backend}: {done:,} refunds; this round relay {n / seconds:,.0f}/s, "
                    f"bare {n / theirs.rounds[-1][1]:,.0f}/s",
                    flush=True,
                )
        t0 = time.perf_counter()
        while args.drain:  # the refunded notifications and events
            got = relay.run_once()
            handled += got
            if not got:
                break
        relay_s += time.perf_counter() - t0
        checks = check(runtime.engine, messages, created_per_key(proc), drained=args.drain)
        pool.shutdown()
        relay.close()
        gateway.close()
        bare_gateway.close()
        runtime.dispose()
    return Result(backend, ours, theirs, handled, relay_s, checks)


def check(
    engine: Any, messages: list[dict[str, Any]], created: dict[str, int], *, drained: bool
) -> list[str]:
    keys = {m["idempotency_key"] for m in messages}
    with UnitOfWork(engine, readonly=True) as uow:
        c = uow.conn
        statuses = Counter(c.execute(select(refunds.c.status)).scalars())
        tenders = Counter(
            c.execute(
                select(refund_tenders.c.status).where(refund_tenders.c.kind == "external")
            ).scalars()
        )
        calls = Counter(c.execute(select(gateway_calls.c.idempotency_key)).scalars())
        left = Counter(c.execute(select(outbox.c.status)).scalars())
    n = len(messages)
    assert statuses == {"refunded": n}, statuses
    assert tenders == {"succeeded": n}, tenders
    assert set(calls) == keys and set(calls.values()) == {1}, "one recorded call per tender"
    if drained:
        assert set(left) == {"done"}, left
    else:  # every gateway refund is done; notifications and events may wait
        with UnitOfWork(engine, readonly=True) as uow:
            money_left = uow.conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.topic == "gateway.refund", outbox.c.status != "done")
            ).scalar()
        assert money_left == 0, money_left
    ours = {k: v for k, v in created.items() if not k.startswith("bare:")}
    assert ours.keys() == keys and set(ours.values()) == {1}, "one refund per key"
    assert len(created) == 2 * n, "the bare loop's refunds too"
    return [
        f"{n:,} refunds refunded, their tenders succeeded once",
        f"{sum(calls.values()):,} gateway calls recorded (one per tender)",
        f"{sum(left.values()):,} outbox messages, all done"
        if drained
        else f"{sum(left.values()):,} outbox messages: every gateway refund done, "
        f"{left.get('pending', 0):,} notifications and events not drained (--no-drain)",
        f"the sandbox created one refund per key ({len(ours):,} keys, {len(created):,} with "
        "the bare loop's)",
    ]


def report(results: list[Result], args: Any) -> None:
    print()
    print(
        f"{'backend':11s} {'refunds':>8s} {'seconds':>8s} {'relay/s':>8s} "
        f"{'min/median/max per round':>26s} {'bare/s':>8s} {'min/median/max per round':>26s} "
        f"{'ratio':>6s}  goal: ≤ {GOAL_S} s per 100,000"
    )
    for r in results:
        lo, mid, hi = r.relay.spread()
        blo, bmid, bhi = r.bare.spread()
        per_100k = r.relay.seconds * 100_000 / r.relay.refunds
        told = "" if r.relay.refunds >= 100_000 else " (extrapolated)"
        print(
            f"{r.backend:11s} {r.relay.refunds:8,d} {r.relay.seconds:8.1f} {r.relay.rate:8,.0f} "
            f"{f'{lo:,.0f} / {mid:,.0f} / {hi:,.0f}':>26s} {r.bare.rate:8,.0f} "
            f"{f'{blo:,.0f} / {bmid:,.0f} / {bhi:,.0f}':>26s} "
            f"{r.relay.rate / r.bare.rate:6.3f}  {per_100k:.0f} s per 100,000{told}: "
            f"{'met' if per_100k <= GOAL_S else 'NOT met'}"
        )
    for r in results:
        if not args.drain:
            for line in r.checks:
                print(f"  {r.backend}: {line}")
            continue
        print(
            f"  {r.backend}: outbox messages per second per relay process: "
            f"{r.messages / r.relay_s:,.0f} ({r.messages:,} messages in {r.relay_s:.1f} s: "
            f"gateway refunds, notifications, events; concurrency {args.concurrency}, "
            f"batches of {args.batch}, {args.answers} answers per transaction)"
        )
        for line in r.checks:
            print(f"  {r.backend}: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refunds", type=int, default=100_000, help="refunds queued")
    parser.add_argument("--concurrency", type=int, default=16, help="relay_concurrency")
    parser.add_argument("--batch", type=int, default=100, help="relay_batch")
    parser.add_argument("--round", type=int, default=10, help="relay rounds per timed round")
    parser.add_argument("--answers", type=int, default=50, help="relay_answers_per_transaction")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--money-only",
        action="store_true",
        help="mark the queued notifications and events done first (another worker's)",
    )
    parser.add_argument(
        "--no-drain",
        dest="drain",
        action="store_false",
        help="stop once every tender is settled: outbox messages/s is not measured",
    )
    parser.add_argument("--serve-sandbox", metavar="CAPTURES", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox)
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    configure_logging(level="warning", fmt="console")  # not a line per refund on the terminal
    with tempfile.TemporaryDirectory(prefix="refundry-relay-bench-") as tmp:
        dbs = Databases(tmp)
        try:
            print(f"disk fsync rate: {fsync_rate(directory=tmp):,.0f}/s (4 KiB + fsync in {tmp})")
            if "postgresql" in backends:
                print(f"postgresql server: {pg_settings()}")
            sqlite_seed, seed_s = seed(dbs, args.refunds)
            print(
                f"queued {args.refunds:,} refunds (ingest + one bulk job on SQLite, untimed) "
                f"in {seed_s:.0f} s",
                flush=True,
            )
            report([run(dbs, b, sqlite_seed, args, tmp) for b in backends], args)
        finally:
            dbs.close()


if __name__ == "__main__":
    main()
