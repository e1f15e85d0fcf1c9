"""The second half of `make demo`: a small shop on the embedded SQLite store, real refund cases.

It seeds customers and paid orders (coupons, points, 满减 / 满返 / 满赠 campaigns), then applies
refunds through the same services a shop would call — preview, apply with an idempotency key,
the outbox relay talking to the sandbox payment gateway, webhooks arriving late and twice — and
shows the money, the assets and the audit chain at the end.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway_sandbox import SandboxGateway
from refundry.bootstrap import build
from refundry.domain.policy import Policy
from refundry.render import format_minor
from refundry.services.access import Actor
from refundry.services.audit.verify import verify_chain
from refundry.services.orders.ingest import ingest_order
from refundry.services.outbox.relay import Relay
from refundry.services.refunds.apply import ApplyResult, apply_refund, preview_refund
from refundry.services.refunds.failed_refunds import refund_to_wallet
from refundry.services.refunds.gateway_events import handle_gateway_event
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store import tables as t
from refundry.store.migrate import upgrade

__all__ = ["run_shop"]

START = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)  # Singles' Day, 10:00 in Shanghai
CATALOGUE = [
    ("JKT", "Down jacket", 89900),
    ("SNK", "Running shoes", 45900),
    ("TEA", "Oolong tea 500g", 12800),
    ("HDP", "Headphones", 129900),
    ("MUG", "Ceramic mug", 4900),
    ("BAG", "Backpack", 35900),
]
TIERS = [
    {"name": "regular", "min_growth": 0},
    {"name": "silver", "min_growth": 1000},
    {"name": "gold", "min_growth": 5000},
]
MJ: dict[str, Any] = {
    "id": "MJ-500-100",
    "kind": "threshold_discount",
    "measure": "list",
    "threshold": 50000,
}
MF: dict[str, Any] = {
    "id": "MF-1000-200",
    "kind": "order_cashback",
    "measure": "paid",
    "quota_per_customer": 1,
    "high_value": True,
    "tiers": [{"threshold": 100000, "reward": 20000}, {"threshold": 200000, "reward": 50000}],
}
GIFT: dict[str, Any] = {
    "id": "MZ-800",
    "kind": "gift_with_purchase",
    "measure": "list",
    "threshold": 80000,
}


@dataclass
class Shop:
    engine: Engine
    clock: ManualClock
    gateway: SandboxGateway
    relay: Relay
    policy: Policy
    console: Console


def _order(rng: random.Random, n: int, customer: str, *, card: str) -> dict[str, Any]:
    picks = rng.sample(CATALOGUE, rng.randint(2, 4))
    lines: list[dict[str, Any]] = [
        {
            "id": f"L{i}",
            "sku": sku,
            "title": title,
            "merchant_id": f"m-{i % 2}",
            "quantity": rng.randint(1, 2),
            "unit_price": price,
        }
        for i, (sku, title, price) in enumerate(picks, start=1)
    ]
    ids = [ln["id"] for ln in lines]
    listed = sum(ln["quantity"] * ln["unit_price"] for ln in lines)
    adjustments: list[dict[str, Any]] = []
    campaigns: list[dict[str, Any]] = []
    if listed >= MJ["threshold"]:
        adjustments.append(
            {
                "id": "A-MJ",
                "kind": "threshold_discount",
                "amount": 10000,
                "lines": ids,
                "source": {"type": "campaign", "id": MJ["id"]},
            }
        )
        campaigns.append(MJ)
    adjustments.append(
        {
            "id": "A-CP",
            "kind": "coupon",
            "amount": 2000,
            "lines": ids[:1],
            "source": {"type": "coupon", "id": f"CP-{customer}-{n}"},
        }
    )
    if listed >= GIFT["threshold"]:
        lines.append(
            {
                "id": "G",
                "sku": "SCARF",
                "title": "Scarf (gift)",
                "merchant_id": "m-0",
                "quantity": 1,
                "unit_price": 0,
                "gift_of": GIFT["id"],
                "declared_value": 3900,
            }
        )
        campaigns.append(GIFT)
    paid = listed - sum(a["amount"] for a in adjustments)
    rewards = []
    if paid >= 100000:
        campaigns.append(MF)
        reward = 50000 if paid >= 200000 else 20000
        rewards.append(
            {
                "id": f"RW-{customer}-{n}",
                "campaign_id": MF["id"],
                "amount": reward,
                "status": "granted",
            }
        )
    points = min(2000, paid // 20)
    shipping = 1000
    return {
        "id": f"o-{customer}-{n}",
        "customer_id": customer,
        "currency": "CNY",
        "status": "delivered",
        "paid_at": START.isoformat(),
        "lines": lines,
        "adjustments": adjustments,
        "campaigns": campaigns,
        "rewards": rewards,
        "shipping_fee": shipping,
        "tenders": [
            {
                "id": "CARD",
                "kind": "external",
                "method": "alipay",
                "amount": paid + shipping - points,
                "gateway_txn_id": card,
            },
            {"id": "PTS", "kind": "points", "amount": points, "points": points},
        ],
        "points_earned": {"points": paid // 100, "status": "granted"},
        "growth_value": paid // 100,
    }


def _seed(shop: Shop, customers: int = 40) -> list[dict[str, Any]]:
    rng = random.Random(20261111)
    orders = []
    with UnitOfWork(shop.engine) as uow:
        for c in range(customers):
            cid = f"c{c:03d}"
            for n in range(rng.randint(1, 3)):
                card = f"ali-{cid}-{n}"
                doc = _order(rng, n, cid, card=card)
                expired = rng.random() < 0.5
                coupon = {
                    "id": f"CP-{cid}-{n}",
                    "value": 2000,
                    "valid_until": (START + timedelta(days=1 if expired else 60)).isoformat(),
                }
                customer: dict[str, Any] = {
                    "locale": "zh-CN" if c % 3 else "en",
                    "points_balance": 3000,
                    "growth_value": 1200,
                    "tier_table": TIERS,
                    "coupons": [coupon],
                }
                if c % 7 == 0:
                    customer["risk_flags"] = ["frequent_refunder"]
                ingest_order(
                    uow.conn, {"order": doc, "customer": customer}, policy=shop.policy, now=START
                )
                shop.gateway.capture(card, doc["tenders"][0]["amount"], "CNY")
                orders.append(doc)
        uow.commit()
    return orders


def _refund(
    shop: Shop, order: dict[str, Any], lines: list[tuple[str, int]], reason: str, key: str
) -> ApplyResult:
    req = {
        "order_id": order["id"],
        "reason": reason,
        "lines": [{"line_id": lid, "quantity": q} for lid, q in lines],
    }
    plan = preview_refund(
        shop.engine, order_id=order["id"], request=req, policy=shop.policy, now=shop.clock()
    )
    return apply_refund(
        shop.engine,
        order_id=order["id"],
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key=key,
        actor="agent:demo",
        now=shop.clock(),
        policy=shop.policy,
    )


def _settle(shop: Shop) -> list[str]:
    """Let time pass: the relay sends, the gateway confirms, webhooks arrive (some twice)."""
    outcomes: list[str] = []
    for _ in range(3):
        shop.relay.drain()
        shop.clock.advance(timedelta(seconds=10))
        shop.gateway.deliver_due(
            lambda e: outcomes.append(handle_gateway_event(shop.engine, e, now=shop.clock()))
        )
    shop.relay.drain()
    return outcomes


def _status(shop: Shop, refund_id: str) -> str:
    with UnitOfWork(shop.engine, readonly=True) as uow:
        return str(
            uow.conn.execute(
                select(t.refunds.c.status).where(t.refunds.c.id == refund_id)
            ).scalar_one()
        )


def run_shop(console: Console, path: Path = Path("refundry-demo.sqlite")) -> dict[str, Any]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    clock = ManualClock(START + timedelta(days=13))
    gateway = SandboxGateway(
        clock=clock,
        seed=11,
        duplicate_webhook_rate=0.5,
        reorder_webhooks=True,
        confirm_after=timedelta(seconds=5),
    )
    # Dev mode: every adapter a sandbox, the gateway one that misbehaves on purpose.
    runtime = build(Settings(dev=True, database_url=url), clock=clock, gateway=gateway)
    engine = runtime.engine
    shop = Shop(engine, clock, gateway, runtime.relay(name="demo-relay"), Policy(), console)
    orders = _seed(shop)
    console.print(f"Seeded {len(orders)} paid orders of 40 customers into {path} (SQLite, WAL).")
    rows: list[tuple[str, str, str, str]] = []

    def case(title: str, act: Callable[[], ApplyResult]) -> ApplyResult:
        result = act()
        _settle(shop)
        plan = result.plan
        rows.append(
            (
                title,
                format_minor(plan["amount"]["total"], "CNY"),
                ", ".join(
                    sorted({e["type"] for e in plan["effects"] if e["type"] != "refund_to_tender"})
                )
                or "-",
                _status(shop, result.refund_id),
            )
        )
        return result

    big = next(o for o in orders if any(c["id"] == MF["id"] for c in o["campaigns"]))
    goods = [ln for ln in big["lines"] if "gift_of" not in ln]
    case(
        f"{big['id']}: one unit back, changed mind (满减 / 满返 re-evaluated)",
        lambda: _refund(shop, big, [(goods[0]["id"], 1)], "changed_mind", "demo-1"),
    )
    rest = [(ln["id"], ln["quantity"] - (1 if ln is goods[0] else 0)) for ln in big["lines"]]
    case(
        f"{big['id']}: the rest back, quality issue (shipping, coupon, gift)",
        lambda: _refund(shop, big, [r for r in rest if r[1]], "quality_issue", "demo-2"),
    )
    second = next(o for o in orders if o is not big)
    first = case(
        f"{second['id']}: everything back, wrong item",
        lambda: _refund(
            shop,
            second,
            [(ln["id"], ln["quantity"]) for ln in second["lines"]],
            "wrong_item",
            "demo-3",
        ),
    )
    # The customer's app sends the same confirmed refund again (a double tap, a retry after a
    # lost answer): same request, same previewed plan, same idempotency key.
    replay = apply_refund(
        engine,
        order_id=second["id"],
        request=first.plan["request"],
        expected_plan_hash=first.plan["plan_hash"],
        idempotency_key="demo-3",
        actor="agent:demo",
        now=clock(),
        policy=shop.policy,
    )
    rows.append(
        (
            f"{second['id']}: the same click again (same idempotency key)",
            "replayed" if replay.replayed and replay.refund_id == first.refund_id else "!",
            "-",
            _status(shop, replay.refund_id),
        )
    )
    closed = next(o for o in orders if o is not big and o is not second)
    gateway.set_card_state(closed["tenders"][0]["gateway_txn_id"], "closed")
    failed = case(
        f"{closed['id']}: card closed since purchase",
        lambda: _refund(shop, closed, [(closed["lines"][0]["id"], 1)], "not_received", "demo-4"),
    )
    refund_to_wallet(
        engine,
        refund_id=failed.refund_id,
        tender_id="CARD",
        actor=Actor("agent", "lin"),
        now=clock(),
        reason="card closed: customer asked for wallet",
        gateway=gateway,
    )
    rows.append(
        (
            f"{closed['id']}: agent moves the failed refund to the wallet",
            format_minor(failed.plan["tenders"][0]["amount"], "CNY"),
            "refund_to_wallet",
            _status(shop, failed.refund_id),
        )
    )
    gateway.inject("accept_then_time_out")
    timeout_order = next(o for o in orders if o not in (big, second, closed))
    case(
        f"{timeout_order['id']}: gateway answer lost (timeout), found by lookup",
        lambda: _refund(
            shop, timeout_order, [(timeout_order["lines"][0]["id"], 1)], "changed_mind", "demo-5"
        ),
    )

    table = Table(title="Refund cases", expand=True)
    for col in ("case", "moved", "effects", "status"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    with UnitOfWork(engine, readonly=True) as uow:
        chain = verify_chain(uow.conn)
        inbox = uow.conn.execute(select(func.count()).select_from(t.inbox_messages)).scalar_one()
        wallet = balance(uow.conn, "wallet", closed["customer_id"])
    ledger = gateway.ledger
    console.print(
        f"Gateway: {len([r for r in ledger.requests if r.outcome == 'created'])} "
        f"refunds created for {len(ledger.requests)} requests (retries replayed); "
        f"{inbox} messages in customers' inboxes; "
        f"wallet of {closed['customer_id']}: {format_minor(wallet, 'CNY')}."
    )
    console.print(
        f"Audit chain: {'verified' if chain.ok else 'BROKEN'}, {chain.entries} entries "
        f"(`refundry audit verify --dev --url {url}`: signed with the development key)."
    )
    engine.dispose()
    if not chain.ok:
        raise SystemExit("demo: the audit chain does not verify")
    return {"rows": rows, "audit_entries": chain.entries, "inbox": inbox}
