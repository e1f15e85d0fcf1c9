"""Two tenders of one refund settled at the same moment by two writers (the relay recording one
gateway answer while the API takes the gateway's webhook for the other, or two relay
processes): the refund ends ``refunded``, on SQLite and PostgreSQL.

With only the tender row locked, each writer read the other tender as it was before the other
committed (PostgreSQL's READ COMMITTED) and both left the refund ``refunding`` for ever. The
refund row is locked before its tenders are read (settle_refund_status), so the second writer
reads the first one's committed outcome."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.refunds.tender_outcomes import record_tender_outcome
from refundry.services.uow import UnitOfWork
from refundry.store.tables import refund_tenders, refunds

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def _refund_on_two_tenders(engine: Engine) -> tuple[str, dict[str, str]]:
    """SPEC's 满减 order paid with Alipay and a card, refunded in full: one refund, two tenders
    waiting for the gateway. Its id, and each tender's idempotency key."""
    doc = copy.deepcopy(ex.THRESHOLD)
    paid = doc["tenders"][0]["amount"]
    doc["tenders"] = [
        {**doc["tenders"][0], "amount": paid - 20000},
        {
            "id": "T2",
            "kind": "external",
            "method": "card",
            "amount": 20000,
            "gateway_txn_id": "card-o-500-100",
        },
    ]
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, doc, policy=Policy(), now=NOW)
        uow.commit()
    req = ex.request(doc["id"], "X", "Y")
    plan = preview_refund(engine, order_id=doc["id"], request=req, policy=Policy(), now=NOW)
    refund_id = apply_refund(
        engine,
        order_id=doc["id"],
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key="k-race",
        actor="agent:a",
        now=NOW,
        policy=Policy(),
    ).refund_id
    with UnitOfWork(engine, readonly=True) as uow:
        keys = dict(
            uow.conn.execute(
                select(refund_tenders.c.tender_id, refund_tenders.c.idempotency_key).where(
                    refund_tenders.c.refund_id == refund_id
                )
            ).all()
        )
    assert sorted(keys) == ["T1", "T2"], keys
    return refund_id, keys


def test_two_tenders_settled_at_once_leave_the_refund_refunded(engine: Engine) -> None:
    refund_id, keys = _refund_on_two_tenders(engine)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def settle(tender: str, hold: bool) -> None:
        try:
            with UnitOfWork(engine) as uow:
                record_tender_outcome(
                    uow.conn,
                    refund_id=refund_id,
                    tender_id=tender,
                    idempotency_key=keys[tender],
                    status="succeeded",
                    gateway_refund_id=f"g-{tender}",
                    code=None,
                    at=NOW,
                    actor="relay",
                )
                if hold:  # the first writer has settled its tender and not yet committed
                    holding.set()
                    release.wait(10)
                uow.commit()
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=settle, args=("T1", True))
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=settle, args=("T2", False))
    second.start()
    second.join(1.0)  # the naive version commits here, having read T1 as it was
    release.set()
    first.join(10)
    second.join(10)
    assert not errors, errors
    with UnitOfWork(engine, readonly=True) as uow:
        status = uow.conn.execute(
            select(refunds.c.status).where(refunds.c.id == refund_id)
        ).scalar_one()
        tenders = uow.conn.execute(
            select(refund_tenders.c.status).where(refund_tenders.c.refund_id == refund_id)
        ).scalars()
        assert sorted(tenders) == ["succeeded", "succeeded"]
    assert status == "refunded"
