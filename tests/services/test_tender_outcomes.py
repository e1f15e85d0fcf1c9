"""Many gateway answers recorded at once (the relay's transaction of answers) write exactly what
recording them one after the other writes: the tenders, the refunds, the queued messages and
the audit chains, row for row — for answers in any order, repeated, for an earlier attempt's
key, several for one refund, several customers'."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.tender_outcomes import (
    TenderAnswer,
    record_tender_outcome,
    record_tender_outcomes,
)
from refundry.store.tables import audit_log, outbox, refund_tenders, refunds
from tests.tools import refund_lines

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
AT = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def queue(engine: Engine) -> list[tuple[str, str, str]]:
    """Four refunds of two customers, two of them paid by two cards: the (refund, tender, key)
    of every card's refund."""
    with engine.begin() as conn:
        for i in range(4):
            doc = copy.deepcopy(ex.THRESHOLD)
            doc["id"] = f"o-{i}"
            doc["customer_id"] = f"c-{i % 2}"
            card = doc["tenders"][0]
            card["gateway_txn_id"] = f"ch-{i}"
            if i >= 2:  # 30,000 and 20,000 on two cards
                card["amount"] = 30000
                doc["tenders"].append(
                    {**card, "id": "T2", "amount": 20000, "gateway_txn_id": f"ch-{i}b"}
                )
            ingest_order(conn, doc, policy=Policy(), now=START)
    for i in range(4):
        refund_lines(engine, f"o-{i}", "X", "Y", now=START)
    t = refund_tenders.c
    with engine.connect() as conn:
        return [
            (str(r.refund_id), str(r.tender_id), str(r.idempotency_key))
            for r in conn.execute(
                select(t.refund_id, t.tender_id, t.idempotency_key)
                .where(t.kind == "external")
                .order_by(t.refund_id, t.tender_id)
            )
        ]


def state(conn: Connection) -> dict[str, Any]:
    """What the answers may have written, without the ids a sequence hands out."""
    return {
        "tenders": [
            tuple(r)
            for r in conn.execute(
                select(refund_tenders).order_by(
                    refund_tenders.c.refund_id, refund_tenders.c.tender_id
                )
            )
        ],
        "refunds": [
            tuple(r)
            for r in conn.execute(
                select(refunds.c.id, refunds.c.status, refunds.c.updated_at).order_by(refunds.c.id)
            )
        ],
        "messages": [
            tuple(r)
            for r in conn.execute(
                select(
                    outbox.c.topic, outbox.c.key, outbox.c.customer_id, outbox.c.payload
                ).order_by(outbox.c.id)
            )
        ],
        "audit": [
            tuple(r)
            for r in conn.execute(
                select(
                    audit_log.c.chain,
                    audit_log.c.seq,
                    audit_log.c.action,
                    audit_log.c.data,
                    audit_log.c.hash,
                ).order_by(audit_log.c.chain, audit_log.c.seq)
            )
        ],
    }


answer_of = st.tuples(
    st.integers(0, 5),  # which card's refund (there are six)
    st.sampled_from(["accepted", "succeeded", "failed"]),
    st.booleans(),  # under the tender's key, or an earlier attempt's
    st.sampled_from([None, "gw-1", "gw-2"]),
)


def test_answers_recorded_at_once_write_what_one_at_a_time_writes(engine: Engine) -> None:
    cards = queue(engine)
    assert len(cards) == 6, cards  # the two-card orders refund on both cards

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(st.lists(answer_of, min_size=1, max_size=8))
    def check(drawn: list[tuple[int, str, bool, str | None]]) -> None:
        answers = [
            TenderAnswer(
                refund_id=cards[i][0],
                tender_id=cards[i][1],
                idempotency_key=cards[i][2] if current else "an-earlier-attempt",
                status=status,
                gateway_refund_id=gateway_id,
                code="card_closed" if status == "failed" else None,
            )
            for i, status, current, gateway_id in drawn
        ]
        with engine.connect() as conn:
            with conn.begin() as tx:
                one_by_one = [
                    record_tender_outcome(
                        conn,
                        refund_id=a.refund_id,
                        tender_id=a.tender_id,
                        idempotency_key=a.idempotency_key,
                        status=a.status,
                        gateway_refund_id=a.gateway_refund_id,
                        code=a.code,
                        at=AT,
                        actor="relay",
                    )
                    for a in answers
                ]
                expected = state(conn)
                tx.rollback()
            with conn.begin() as tx:
                at_once = record_tender_outcomes(conn, answers, at=AT, actor="relay")
                found = state(conn)
                tx.rollback()
        assert at_once == one_by_one
        assert found == expected
        # the property is not empty: some draws change something
        if any(one_by_one):
            assert found["tenders"] != [] and found["audit"]

    check()


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_a_refund_settles_once_its_last_card_answers(engine: Engine, status: str) -> None:
    """A worked case of the property: both cards of a two-card refund answered in one
    transaction — the refund moves once, its event lists both cards as they ended."""
    cards = [c for c in queue(engine) if c[0] == queue_refund_of(engine, "o-2")]
    assert [c[1] for c in cards] == ["T1", "T2"]
    answers = [TenderAnswer(r, t, k, "succeeded" if t == "T1" else status) for r, t, k in cards]
    with engine.begin() as conn:
        assert record_tender_outcomes(conn, answers, at=AT, actor="relay") == [True, True]
    with engine.connect() as conn:
        moved = conn.execute(select(refunds.c.status).where(refunds.c.id == cards[0][0])).scalar()
        events = [
            p
            for p in conn.execute(
                select(outbox.c.payload).where(
                    outbox.c.topic == "event", outbox.c.key.like(f"event:refund.%:{cards[0][0]}:%")
                )
            ).scalars()
        ]
    assert moved == ("refunded" if status == "succeeded" else "refund_failed")
    assert len(events) == 1 and f'"{status}"' in events[0] and '"succeeded"' in events[0]


def queue_refund_of(engine: Engine, order_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(refunds.c.id).where(refunds.c.order_id == order_id)).scalar_one()
        )
