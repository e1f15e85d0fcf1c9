"""The HTTP shell against the framework's own speed (issue #15 point 3).

``refundry serve`` (SQLite: 1 worker; PostgreSQL: ``--pg-workers``, default 2) and, in the
same run, a bare FastAPI app served by uvicorn with the same worker count, whose ``async def``
endpoints answer bodies of the same sizes. wrk (``apt-get install wrk``) loads each at
``--connections`` (64) for ``--duration`` seconds: ``GET /v1/orders/{id}`` of a stored order,
the refund preview (``POST /v1/orders/{id}/refund-preview``) and the case list
(``GET /v1/cases``), each as an agent with a bearer token. The rounds interleave bare and
refundry per operation; printed: requests/s min / median / max over the rounds, the ratio to
the bare rate of the same round (median), p50 / p99 (median over rounds) and p99 / p50.
Goals (the issue): GET >= 0.5 and preview >= 0.3 of the bare rate, p99 <= 3 x p50.

    .venv/bin/python bench/http_bench.py --backend both
    .venv/bin/python bench/http_bench.py --backend sqlite --duration 3 --rounds 1  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pages_bench import (  # noqa: E402
    BIN,
    ENV,
    HEAVY,
    POLICY,
    Load,
    _free_port,
    bench_database,
    seed,
    serving,
    wrk,
)

from refundry.api.auth import issue_token  # noqa: E402
from refundry.settings import DEV_SECRET  # noqa: E402

BARE = """
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
BODIES = {bodies!r}


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {{"ok": True}}


@app.get("/order")
async def order() -> Response:
    return Response(BODIES["order"], media_type="application/json")


@app.post("/preview")
async def preview(request: Request) -> Response:
    await request.body()
    return Response(BODIES["preview"], media_type="application/json")


@app.get("/cases")
async def cases() -> Response:
    return Response(BODIES["cases"], media_type="application/json")
"""

LUA = """wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def run_backend(backend: str, args: argparse.Namespace) -> None:
    workers = 1 if backend == "sqlite" else args.pg_workers
    env = ENV
    with bench_database(backend, "http-bench") as (url, tmp):
        seed(url, args.cases, 20)
        token = issue_token(
            DEV_SECRET.encode(),
            role="agent",
            subject="bench",
            now=datetime.now(UTC),
            ttl=timedelta(hours=2),
            key_id="k1",
        )
        headers = {"Authorization": f"Bearer {token}"}
        port, bare_port = _free_port(), _free_port()
        serve = [str(BIN / "refundry"), "serve", "--dev", "--url", url, "--port", str(port)]
        serve += ["--workers", str(workers), "--set", f"policy_text={POLICY}"]
        with serving(serve, port, env) as base:
            for n in range(20):  # an order of the seed's with a line no case holds
                order_id = f"o-{HEAVY}-{n}"
                got = httpx.get(f"{base}/v1/orders/{order_id}", headers=headers)
                if len(got.json()["lines"]) > 1:
                    break
            lines = [{"line_id": ln["line_id"], "quantity": 1} for ln in got.json()["lines"][1:2]]
            ask = {"lines": lines, "reason": "changed_mind", "kind": "refund_only"}
            preview = httpx.post(
                f"{base}/v1/orders/{order_id}/refund-preview", headers=headers, json=ask
            )
            listed = httpx.get(f"{base}/v1/cases", headers=headers)
            for answer in (got, preview, listed):
                assert answer.status_code == 200, answer.text
            bodies = {"order": got.text, "preview": preview.text, "cases": listed.text}
            (tmp / "bare.py").write_text(BARE.format(bodies=bodies))
            scripts = {}
            for name, method, body in (
                ("get", "GET", "nil"),
                ("post", "POST", json.dumps(json.dumps(ask))),
            ):
                scripts[name] = tmp / f"{name}.lua"
                scripts[name].write_text(LUA.format(method=method, body=body, token=token))
            ops = {
                "GET order": ("get", f"/v1/orders/{order_id}", "/order"),
                "preview": ("post", f"/v1/orders/{order_id}/refund-preview", "/preview"),
                "case list": ("get", "/v1/cases", "/cases"),
            }
            bare_cmd = [str(BIN / "uvicorn"), "bare:app", "--app-dir", str(tmp), "--port"]
            bare_cmd += [str(bare_port), "--workers", str(workers), "--log-level", "warning"]
            with serving(bare_cmd, bare_port, env) as bare_base:
                loads = {(op, side): Load() for op in ops for side in ("bare", "refundry")}
                for n in range(args.rounds):
                    for op, (script, path, bare_path) in ops.items():
                        c, d = args.connections, args.duration
                        wrk(
                            f"{bare_base}{bare_path}",
                            ["-s", str(scripts[script])],
                            c,
                            d,
                            loads[op, "bare"],
                        )
                        wrk(
                            f"{base}{path}",
                            ["-s", str(scripts[script])],
                            c,
                            d,
                            loads[op, "refundry"],
                        )
                    print(f"  round {n + 1}/{args.rounds} done", flush=True)
        print(f"\n{backend} ({workers} worker(s)), {args.connections} connections, {args.rounds}")
        print(f"rounds of {args.duration} s; load average now: {os.getloadavg()[0]:.1f}")
        print(
            f"{'operation':10s} {'side':9s} {'req/s min / median / max':>26s} {'ratio':>6s} ",
            end="",
        )
        print(f"{'p50 ms':>7s} {'p99 ms':>7s} {'p99/p50':>7s}")
        for op in ops:
            bare = loads[op, "bare"].rates
            for side in ("bare", "refundry"):
                load = loads[op, side]
                ratio = statistics.median(r / b for r, b in zip(load.rates, bare, strict=True))
                p50, p99 = statistics.median(load.p50), statistics.median(load.p99)
                spread = f"{min(load.rates):.0f} / {statistics.median(load.rates):.0f} / "
                spread += f"{max(load.rates):.0f}"
                print(
                    f"{op:10s} {side:9s} {spread:>26s} {ratio:6.3f} {p50:7.1f} {p99:7.1f} "
                    f"{p99 / p50:7.1f}" + (f"  ({load.errors} non-2xx)" if load.errors else "")
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("http_bench needs wrk: apt-get install wrk")
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run_backend(backend, args)


if __name__ == "__main__":
    main()
