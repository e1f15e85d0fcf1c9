"""`make demo SERVE=1`: a demo shop served in the browser until Ctrl-C.

It makes a fresh SQLite store (./refundry-demo-serve.sqlite), seeds SPEC §3's orders for
customer c-100 (the expired coupon, 满500减100, 满1000返200) and a mug order, opens three cases
(one refunded by the review rules, one return on its way to the merchant, one waiting for an
agent), creates an agent account and a merchant account (merchant m-1, every line's merchant)
with random passwords, and serves the pages and the API with the worker beside them (the
sandbox gateway settles refunds at once). It prints the shop's address, the customer's sign-in
link (valid 15 minutes, like a shop's: press Enter for a new one) and the desk accounts.

    .venv/bin/python -m refundry.demo --serve [--port 8000] [--db refundry-demo-serve.sqlite]

Port 0, or a port in use, serves on a free one (the address printed is the one served).
"""

from __future__ import annotations

import secrets
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr
from rich.console import Console

from refundry.adapters.clock import utc_now
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.api.app import create_app
from refundry.api.auth import issue_token
from refundry.demo import worked_examples as ex
from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases.opening import open_case
from refundry.services.orders.ingest import ingest_order
from refundry.services.staff.accounts import add_staff
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.migrate import upgrade
from refundry.worker import Worker

__all__ = ["DemoShop", "main", "make_demo_shop"]

HOST = "127.0.0.1"
AGENT, MERCHANT = "demo-agent", "demo-merchant"
# The review rules of the demo: a quality problem refunded without a return, or ¥100 at most,
# is approved by the rules; the rest waits for an agent.
POLICY = """
[[review.rules]]
name = "quality_refund_only"
decision = "approve"
reasons = ["quality_issue"]
kinds = ["refund_only"]

[[review.rules]]
name = "small_amount"
decision = "approve"
max_amount = 10000
"""


@dataclass
class DemoShop:
    app: Any  # the FastAPI app
    secret: str
    passwords: dict[str, str]  # staff account name -> password

    def sign_in_link(self, base: str) -> str:
        token = issue_token(
            self.secret.encode(),
            role="customer",
            subject=ex.CUSTOMER,
            now=utc_now(),
            ttl=timedelta(minutes=15),
        )
        return f"{base}/signin?token={token}"


def _orders() -> list[dict[str, Any]]:
    mugs = ex.order("o-mugs", [ex.line("M", 10000, quantity=3, title="Blue mug")], 30000)
    return [ex.COUPON, ex.THRESHOLD, ex.CASHBACK, mugs]


def make_demo_shop(path: Path) -> DemoShop:
    """The seeded shop on a fresh SQLite file at ``path`` (what was there is replaced)."""
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    secret = secrets.token_urlsafe(32)
    gateway = SandboxGateway(clock=utc_now, confirm_after=timedelta(0))
    orders = _orders()
    for doc in orders:
        for tender in doc["tenders"]:
            gateway.capture(tender["gateway_txn_id"], tender["amount"], doc["currency"])
    settings = Settings(
        database_url=url,
        secret=SecretStr(secret),
        gateway_webhook_secret=SecretStr(secrets.token_urlsafe(32)),
        carrier_webhook_secret=SecretStr(secrets.token_urlsafe(32)),
        policy_text=POLICY,
        dev=True,
    )
    app = create_app(settings, gateway=gateway)
    desk, now = app.state.ctx.desk, utc_now()
    with UnitOfWork(app.state.ctx.engine) as uow:
        for doc in orders:
            ingested: dict[str, Any] = {"order": doc}
            if doc is ex.COUPON:
                ingested["customer"] = {"coupons": ex.COUPON_SNAPSHOT["coupons"]}
            ingest_order(uow.conn, ingested, policy=desk.policy, now=now - timedelta(days=20))
        uow.commit()
    passwords = {AGENT: secrets.token_urlsafe(12), MERCHANT: secrets.token_urlsafe(12)}
    engine = app.state.ctx.engine
    add_staff(engine, role="agent", name=AGENT, password=passwords[AGENT], now=now)
    add_staff(
        engine,
        role="merchant",
        name=MERCHANT,
        password=passwords[MERCHANT],
        now=now,
        merchant_id="m-1",
    )
    _open_cases(desk, now)
    return DemoShop(app=app, secret=secret, passwords=passwords)


def _open_cases(desk: Any, now: Any) -> None:
    customer, agent = Actor("customer", ex.CUSTOMER), Actor("agent", AGENT)

    def ask(order: str, line: str, qty: int, reason: str, kind: str) -> str:
        request = {
            "order_id": order,
            "lines": [{"line_id": line, "quantity": qty}],
            "reason": reason,
            "kind": kind,
        }
        return open_case(desk, actor=agent, request=request, now=now).case_id

    ask(ex.THRESHOLD["id"], "Y", 1, "quality_issue", "refund_only")  # the rules approve it
    on_its_way = ask("o-mugs", "M", 2, "wrong_item", "return_and_refund")
    case_actions.approve(desk, on_its_way, actor=agent, now=now, comment="wrong colour")
    case_actions.ship(desk, on_its_way, actor=customer, now=now, tracking_number="SF0001")
    ask(ex.COUPON["id"], "A", 1, "wrong_item", "return_and_refund")  # for an agent


def _socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.bind((HOST, 0))  # taken: any free port
    # Listening before the address is printed: a browser (or a test) that connects at once
    # waits in the backlog until uvicorn accepts, instead of being refused.
    sock.listen(128)
    return sock


def _new_links(shop: DemoShop, base: str, console: Console) -> None:
    """Enter prints a fresh sign-in link; without a terminal this just ends."""
    for _ in sys.stdin:
        console.print(f"Customer sign-in link: {shop.sign_in_link(base)}", soft_wrap=True)


def main(*, port: int = 8000, db: Path = Path("refundry-demo-serve.sqlite")) -> None:
    console = Console()
    shop = make_demo_shop(db)
    sock = _socket(port)
    base = f"http://{HOST}:{sock.getsockname()[1]}"
    runtime = shop.app.state.ctx.runtime
    stop = threading.Event()
    worker = Worker(desk=runtime.desk, relay=runtime.relay(), clock=runtime.clock, name="demo")
    work = threading.Thread(
        target=worker.run_forever, kwargs={"interval": 0.5, "stop": stop.is_set}, daemon=True
    )
    work.start()
    console.print(
        f"The demo shop is served at {base}  (Ctrl-C stops it; store: {db})", soft_wrap=True
    )
    console.print(f"Customer sign-in link: {shop.sign_in_link(base)}", soft_wrap=True)
    console.print("  (valid 15 minutes; press Enter for a new one)")
    console.print(
        f"Agent desk:    {base}/desk/signin  name {AGENT}  password {shop.passwords[AGENT]}",
        soft_wrap=True,
    )
    console.print(
        f"Merchant desk: {base}/desk/signin  name {MERCHANT}  password {shop.passwords[MERCHANT]}",
        soft_wrap=True,
    )
    console.print(f"Dashboard:     {base}/desk/dashboard   API: {base}/docs", soft_wrap=True)
    threading.Thread(target=_new_links, args=(shop, base, console), daemon=True).start()
    config = uvicorn.Config(shop.app, log_level="warning", lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down gracefully, then passes Ctrl-C on
        pass
    finally:
        stop.set()
        work.join(timeout=10)
        shop.app.state.ctx.engine.dispose()
    console.print("The demo shop stopped.")
