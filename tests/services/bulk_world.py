"""Orders for the bulk refund tests: a recall's SKU beside other lines, a campaign, cards,
points, a coupon; one order per customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork

PAID = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def order_doc(i: int, *, with_points: bool = False, campaign: bool = False) -> dict[str, Any]:
    """Two lines: RECALLED (merchant m-1, 2 × 10000) and KEPT (merchant m-2, 1 × 5000); paid
    by card (and 1000 in points when ``with_points``); ``campaign``: a 满减 of 1000 from
    campaign C-FLASH on both lines."""
    lines = [
        {"id": "R", "sku": "RECALLED", "merchant_id": "m-1", "quantity": 2, "unit_price": 10000},
        {"id": "K", "sku": "KEPT", "merchant_id": "m-2", "quantity": 1, "unit_price": 5000},
    ]
    total = 25000
    doc: dict[str, Any] = {
        "id": f"o-{i:05d}",
        "customer_id": f"c-{i:05d}",
        "currency": "CNY",
        "status": "delivered",
        "paid_at": (PAID + timedelta(hours=i)).isoformat(),
        "lines": lines,
    }
    if campaign:
        doc["campaigns"] = [{"id": "C-FLASH", "kind": "threshold_discount", "threshold": 20000}]
        doc["adjustments"] = [
            {
                "id": "MJ",
                "kind": "threshold_discount",
                "amount": 1000,
                "lines": ["R", "K"],
                "source": {"type": "campaign", "id": "C-FLASH"},
            }
        ]
        total -= 1000
    tenders: list[dict[str, Any]] = []
    if with_points:
        tenders.append({"id": "PTS", "kind": "points", "amount": 1000, "points": 1000})
        total -= 1000
    tenders.insert(
        0, {"id": "CARD", "kind": "external", "amount": total, "gateway_txn_id": f"ch_{i:05d}"}
    )
    doc["tenders"] = tenders
    return doc


def ingest(engine: Engine, docs: list[dict[str, Any]], *, now: datetime) -> None:
    with UnitOfWork(engine) as uow:
        for doc in docs:
            snapshot = {"points_balance": 5000, "wallet_balance": 0, "locale": "en"}
            ingest_order(uow.conn, {"order": doc, "customer": snapshot}, policy=Policy(), now=now)
        uow.commit()
