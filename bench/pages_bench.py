"""The pages under load: the customer's order page and the agents' queue against a bare page.

Issue #13 point 7: a store of ``--cases`` cases (default 10,000), one customer with
``--history`` past cases (default 200), ``refundry serve`` (SQLite: 1 worker; PostgreSQL:
``--pg-workers``, default 2) and, in the same run, a bare FastAPI app whose ``async def``
endpoint answers an HTML body of the order page's size, served by uvicorn the same way. A real
load generator, wrk (``apt-get install wrk``), loads each at ``--connections`` (64) for
``--duration`` seconds; the rounds interleave bare, order page and queue, so a noisy neighbour
hits all three alike. Printed per page: requests/s min / median / max over the rounds, the
ratio to the bare rate of the same round (median), and p50 / p99 latency (median over rounds).
Goal (the issue): order page >= 0.3 of the bare rate and p99 < 50 ms on PostgreSQL.

    .venv/bin/python bench/pages_bench.py --backend both
    .venv/bin/python bench/pages_bench.py --backend sqlite --cases 2000 --duration 5  # quick
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refundry.api.auth import issue_token  # noqa: E402
from refundry.bootstrap import build  # noqa: E402
from refundry.services.access import Actor  # noqa: E402
from refundry.services.cases.opening import open_case  # noqa: E402
from refundry.services.orders.ingest import ingest_order  # noqa: E402
from refundry.services.uow import UnitOfWork  # noqa: E402
from refundry.settings import DEV_SECRET, Settings  # noqa: E402

BIN = Path(sys.executable).parent
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
HEAVY = "c-heavy"
# No code step and no review limit in the seed: the bench measures pages, not the OTP flow.
POLICY = "[identity]\notp_above_amount = 100000000\n"
ENV = {**os.environ, "REFUNDRY_LOG_LEVEL": "warning"}
REASONS = ("changed_mind", "quality_issue", "wrong_item", "not_received")


def _order(n: int, customer: str, rng: random.Random) -> dict[str, Any]:
    lines = [
        {
            "id": f"L{i}",
            "sku": f"SKU-{rng.randint(1, 400)}",
            "title": f"Item {i} of order {n}",
            "merchant_id": f"m-{rng.randint(1, 20)}",
            "quantity": rng.randint(1, 3),
            "unit_price": rng.randint(10, 400) * 100,
        }
        for i in range(1, rng.randint(2, 5))
    ]
    paid = sum(ln["quantity"] * ln["unit_price"] for ln in lines)
    return {
        "id": f"o-{customer}-{n}",
        "customer_id": customer,
        "currency": "CNY",
        "status": "delivered",
        "paid_at": (NOW - timedelta(days=3, minutes=n)).isoformat(),
        "lines": lines,
        "tenders": [
            {
                "id": "T1",
                "kind": "external",
                "method": "alipay",
                "amount": paid,
                "gateway_txn_id": f"gw-{customer}-{n}",
            }
        ],
    }


def seed(url: str, cases: int, history: int) -> str:
    """Ingest the orders and open one case on each; the heavy customer's newest order id."""
    settings = Settings(dev=True, database_url=url, policy_text=POLICY)
    runtime = build(settings, schema_check=False)
    rng = random.Random(7)
    owners = [HEAVY] * history + [f"c-{i:05d}" for i in range(max(cases - history, 0))]
    docs = [_order(n, customer, rng) for n, customer in enumerate(owners)]
    started = time.perf_counter()
    for start in range(0, len(docs), 500):
        with UnitOfWork(runtime.engine) as uow:
            for doc in docs[start : start + 500]:
                ingest_order(uow.conn, {"order": doc}, policy=runtime.policy, now=NOW)
            uow.commit()
    for i, doc in enumerate(docs):
        line = doc["lines"][0]
        open_case(
            runtime.desk,
            actor=Actor("customer", doc["customer_id"]),
            request={
                "order_id": doc["id"],
                "lines": [{"line_id": line["id"], "quantity": 1}],
                "reason": REASONS[i % len(REASONS)],
                "kind": "return_and_refund",
            },
            now=NOW + timedelta(seconds=i),
            description="seeded by bench/pages_bench.py",
        )
        if i % 1000 == 999:
            print(f"  seeded {i + 1} cases ({time.perf_counter() - started:.0f} s)", flush=True)
    runtime.engine.dispose()
    return str(docs[history - 1]["id"]) if history else str(docs[0]["id"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(command: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


BARE = """
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

app = FastAPI()
BODY = "<!doctype html><html><body>" + "x" * {size} + "</body></html>"


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {{"ok": True}}


@app.get("/page", response_class=HTMLResponse)
async def page() -> str:
    return BODY
"""


@dataclass
class Load:
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)  # ms
    p99: list[float] = field(default_factory=list)
    errors: int = 0


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, options: list[str], connections: int, duration: int, into: Load) -> None:
    """One wrk run against ``url`` (``options``: a header, a Lua script…), its figures into
    ``into``."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", *options, url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    into.rates.append(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)))  # type: ignore[union-attr]
    into.p50.append(_ms(re.search(r"\s50%\s+(\S+)", out).group(1)))  # type: ignore[union-attr]
    into.p99.append(_ms(re.search(r"\s99%\s+(\S+)", out).group(1)))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    into.errors += int(failed.group(1)) if failed else 0


def cookie(session: str, nonce: str | None = None) -> list[str]:
    """The cookies a signed-in browser sends: its session and, after its first page, the
    form token's nonce (without it every answer sets one, which no browser asks for twice)."""
    nonce_cookie = f"; rf_csrf={nonce}" if nonce else ""
    return ["-H", f"Cookie: rf_session={session}{nonce_cookie}"]


def _spread(values: list[float]) -> str:
    return f"{min(values):7.0f} {statistics.median(values):7.0f} {max(values):7.0f}"


@contextmanager
def bench_database(backend: str, prefix: str) -> Iterator[tuple[str, Path]]:
    """A fresh, migrated database of ``backend`` (a SQLite file or a new PostgreSQL database)
    and a scratch folder; both gone afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    database = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'bench.sqlite'}"
    else:
        database = f"{prefix.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {database}"],
            check=True,
        )
        url = f"postgresql://postgres@127.0.0.1/{database}"
    try:
        subprocess.run([BIN / "refundry", "db", "upgrade", "--url", url], check=True, env=ENV)
        yield url, tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if database:
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE {database}"],
                check=False,
            )


def run_backend(backend: str, args: argparse.Namespace) -> None:
    workers = 1 if backend == "sqlite" else args.pg_workers
    env = ENV
    with bench_database(backend, "pages-bench") as (url, tmp):
        print(f"{backend}: seeding {args.cases} cases, {args.history} of one customer")
        order_id = seed(url, args.cases, args.history)
        session = issue_token(
            DEV_SECRET.encode(),
            role="customer",
            subject=HEAVY,
            now=datetime.now(UTC),
            ttl=timedelta(hours=2),
            key_id="k1",
        )
        desk = issue_token(
            DEV_SECRET.encode(),
            role="agent",
            subject="bench",
            now=datetime.now(UTC),
            ttl=timedelta(hours=2),
            key_id="k1",
        )
        port, bare_port = _free_port(), _free_port()
        serve = [str(BIN / "refundry"), "serve", "--dev", "--url", url, "--port", str(port)]
        serve += ["--workers", str(workers), "--set", f"policy_text={POLICY}"]
        with serving(serve, port, env) as base:
            page = httpx.get(f"{base}/orders/{order_id}", cookies={"rf_session": session})
            queue = httpx.get(f"{base}/desk", cookies={"rf_session": desk})
            assert page.status_code == 200 and queue.status_code == 200, (page, queue)
            assert order_id in page.text and "Item 1 of order" in page.text, page.text[:2000]
            nonce, desk_nonce = page.cookies.get("rf_csrf"), queue.cookies.get("rf_csrf")
            for _ in range(8 * workers):  # every worker has drawn and kept the page: the
                # rounds measure the steady state, not the first draw after a start
                httpx.get(
                    f"{base}/orders/{order_id}", cookies={"rf_session": session, "rf_csrf": nonce}
                )
            (tmp / "bare.py").write_text(BARE.format(size=len(page.content)))
            bare_cmd = [str(BIN / "uvicorn"), "bare:app", "--app-dir", str(tmp), "--port"]
            bare_cmd += [str(bare_port), "--workers", str(workers), "--log-level", "warning"]
            with serving(bare_cmd, bare_port, env) as bare_base:
                sizes = (len(page.content), len(queue.content))
                print(f"  order page {sizes[0]} bytes, queue {sizes[1]} bytes, {workers} worker(s)")
                loads = {"bare": Load(), "order": Load(), "queue": Load()}
                for n in range(args.rounds):
                    wrk(f"{bare_base}/page", [], args.connections, args.duration, loads["bare"])
                    wrk(
                        f"{base}/orders/{order_id}",
                        cookie(session, nonce),
                        args.connections,
                        args.duration,
                        loads["order"],
                    )
                    wrk(
                        f"{base}/desk",
                        cookie(desk, desk_nonce),
                        args.connections,
                        args.duration,
                        loads["queue"],
                    )
                    print(f"  round {n + 1}/{args.rounds} done", flush=True)
        bare = loads["bare"].rates
        print(f"\n{backend} ({workers} worker(s)), {args.connections} connections, {args.rounds}")
        print(f"rounds of {args.duration} s; load average now: {os.getloadavg()[0]:.1f}")
        head = f"{'page':8s} {'req/s min  median     max':>25s} {'ratio':>6s}"
        print(f"{head} {'p50 ms':>7s} {'p99 ms':>7s} {'p99 per round':>22s}")
        for name, load in loads.items():
            ratio = statistics.median(r / b for r, b in zip(load.rates, bare, strict=True))
            print(
                f"{name:8s} {_spread(load.rates):>25s} {ratio:6.3f} "
                f"{statistics.median(load.p50):7.1f} {statistics.median(load.p99):7.1f} "
                f"{' / '.join(f'{p:.0f}' for p in load.p99):>22s}"
                + (f"  ({load.errors} non-2xx)" if load.errors else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=200)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("pages_bench needs wrk: apt-get install wrk")
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run_backend(backend, args)


if __name__ == "__main__":
    main()
