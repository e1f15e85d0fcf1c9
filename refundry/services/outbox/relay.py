"""The outbox relay: delivers what applies committed — gateway refunds, notifications, events.

A worker claims due messages with a lease (PostgreSQL ``FOR UPDATE SKIP LOCKED``, so several
workers share the queue; SQLite's write lock does the same for one machine), delivers each
outside any transaction, then records the answer. A worker that dies mid-way leaves the lease to
run out and another worker delivers again with the same idempotency key, so the gateway never
refunds twice and receivers never show a message twice. Every gateway answer is recorded.

A round's gateway refunds are sent at once, ``concurrency`` at a time, on a pool of threads
(the ``PaymentGateway`` port is synchronous, as are its sandbox, fakes and HTTP client; the
calls wait on the network, not on Python). Their answers are recorded by the relay's own
thread, in the claimed order, ``answers_per_transaction`` to a transaction (the calls, the
tenders' outcomes, the messages done; by a fixed number of statements, services/refunds/
tender_outcomes.py) — at the default of 1, one customer's rows per transaction, as everywhere
(docs/scaling.md), and one writer per process, which SQLite wants. Notifications, events and
return bookings are delivered by that thread while the gateway calls are in flight, a
customer's together: its events fanned out to the shop's webhooks in one transaction, its
notifications handed to the notifier at once (``send_many``: one transaction for their inbox
rows and delivery records).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, insert, select, text, update

from refundry.adapters.errors import GatewayError, GatewayTimeout, GatewayUnavailable
from refundry.adapters.gateway import GatewayAnswer
from refundry.domain.errors import RefundryError
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.shipments import record_booking
from refundry.services.faults import fault_point
from refundry.services.outbox.messages import Topic
from refundry.services.ports import EventPublisher, LogisticsProvider, Notifier, PaymentGateway
from refundry.services.refunds.tender_outcomes import (
    TenderAnswer,
    record_tender_outcome,
    record_tender_outcomes,
)
from refundry.services.shop_webhooks.fanout import fan_out
from refundry.services.uow import UnitOfWork
from refundry.store.prepared import Prepared
from refundry.store.tables import OUTBOX_MONEY, OUTBOX_PENDING, gateway_calls, outbox

log = structlog.get_logger("refundry.relay")

__all__ = ["Relay", "backoff"]

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS: dict[str, int] = {
    Topic.GATEWAY_REFUND: 12,
    Topic.NOTIFY: 8,
    Topic.EVENT: 8,
    Topic.LOGISTICS_BOOK: 12,
}
TENDER_STATUS = {"accepted": "accepted", "succeeded": "succeeded", "refused": "failed"}
# A tender's failure code (as a gateway's refusal codes are), not one of refundry's error codes:
# every attempt timed out or found the gateway down, and it knows nothing of the key.
UNREACHABLE = "gateway_unreachable"
_INSERT_CALLS = Prepared(insert(gateway_calls))


# What asking the gateway came to: its answer, or the error (timeout, outage, refusal of the
# request itself) that the relay's thread records.
_Asked = GatewayAnswer | GatewayError
# A write that belongs in the same transaction as the message's outcome (a gateway call's record)
_Also = Callable[[Connection, datetime], None]


def _bind(message_id: int, topic: str, payload: dict[str, Any]) -> None:
    """The message's fields on every log line written while handling it."""
    structlog.contextvars.bind_contextvars(
        request_id=payload.get("request_id"),
        message_id=message_id,
        topic=topic,
        order_id=payload.get("order_id"),
        refund_id=payload.get("refund_id"),
    )


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s… capped at 15 minutes."""
    return timedelta(seconds=min(2 ** max(attempts, 1), 900))


@dataclass(slots=True)
class Relay:
    engine: Engine
    gateway: PaymentGateway
    notifier: Notifier
    publisher: EventPublisher
    clock: Callable[[], datetime]
    worker: str = "relay"
    lease: timedelta = LEASE  # how long a claimed message is hidden from other workers
    logistics: LogisticsProvider | None = None  # books return labels and pickups
    concurrency: int = 16  # gateway refunds in flight at once (1: one after the other)
    batch: int = 100  # messages claimed per round
    # gateway answers recorded per transaction, each with its tender's outcome and its message
    # done (several customers' rows: excepted by design, docs/scaling.md; 1: one customer's)
    answers_per_transaction: int = 1
    # customers whose notifications and events are delivered at once (PostgreSQL: a thread and
    # a pooled connection each; SQLite, one writer: 1 whatever this says)
    message_concurrency: int = 8
    _pools: dict[str, tuple[int, ThreadPoolExecutor]] = field(
        default_factory=dict, init=False, repr=False
    )

    def run_once(self, *, batch: int | None = None) -> int:
        """Claim and deliver the messages due now; returns how many were handled."""
        claimed = self._claim(batch or self.batch)
        fault_point("relay.after_claim")
        rows = [(row, json.loads(row.payload)) for row in claimed]
        gateway_rows = [(r, p) for r, p in rows if r.topic == Topic.GATEWAY_REFUND]
        pool = (
            self._pool("gateway", self.concurrency)
            if self.concurrency > 1 and len(gateway_rows) > 1
            else None
        )
        asked: dict[int, Future[_Asked]] = {}
        sending: list[Future[list[int]]] = []  # customers' messages on the message threads
        delivered: list[int] = []  # notifications and events sent, marked done together
        try:
            if pool is not None:  # sent at once; the answers are recorded below, in order
                for row, payload in gateway_rows:
                    _bind(row.id, row.topic, payload)
                    context = contextvars.copy_context()  # the message's log fields
                    asked[row.id] = pool.submit(context.run, self._ask, payload)
            # while the gateway calls are in flight, and on PostgreSQL while their answers are
            # recorded too
            sending = self._deliver_messages(
                [(r, p) for r, p in rows if r.topic != Topic.GATEWAY_REFUND], delivered
            )
            answers: list[tuple[int, dict[str, Any], GatewayAnswer]] = []
            for row, payload in gateway_rows:
                _bind(row.id, row.topic, payload)
                found = asked[row.id].result() if row.id in asked else self._ask(payload)
                if isinstance(found, GatewayError):
                    self._record_answers(answers)
                    answers = []
                    self._gateway_failed(row.id, row.attempts, payload, found)
                    continue
                answers.append((row.id, payload, found))
                if len(answers) >= self.answers_per_transaction:
                    self._record_answers(answers)
                    answers = []
            self._record_answers(answers)
        finally:
            for future in asked.values():  # none is left in flight when the round ends
                future.cancel()
            wait(asked.values())
            failed: BaseException | None = None
            for sent in sending:  # each waited for: none is left running either
                try:
                    delivered += sent.result()
                except BaseException as exc:  # the others' deliveries are still marked done
                    failed = failed or exc
            self._mark_done(delivered)
            structlog.contextvars.unbind_contextvars(
                "request_id", "message_id", "topic", "order_id", "refund_id"
            )
        if failed is not None:
            raise failed
        return len(claimed)

    def _deliver_messages(
        self, rows: list[tuple[Any, dict[str, Any]]], delivered: list[int]
    ) -> list[Future[list[int]]]:
        """The round's messages that are not gateway refunds, a customer's together (in the
        order they were written). On PostgreSQL, ``message_concurrency`` customers at once,
        on the message threads: returns their futures (each gives the ids it sent). SQLite has
        one writer: one customer after the other, here, the ids sent put in ``delivered``."""
        by_customer: dict[str | None, list[tuple[Any, dict[str, Any]]]] = {}
        for row, payload in rows:
            by_customer.setdefault(row.customer_id, []).append((row, payload))
        groups = list(by_customer.values())
        at_once = 1 if self.engine.dialect.name == "sqlite" else self.message_concurrency
        if at_once <= 1 or len(groups) <= 1:
            for group in groups:
                delivered += self._deliver_group(group)
            return []
        pool = self._pool("messages", at_once)
        return [
            pool.submit(contextvars.copy_context().run, self._deliver_group, group)
            for group in groups
        ]

    def _pool(self, kind: str, size: int) -> ThreadPoolExecutor:
        """The relay's threads for ``kind`` (gateway calls, customers' messages), kept from
        round to round: starting them anew each round cost more than a round's calls."""
        kept = self._pools.get(kind)
        if kept is not None and kept[0] == size:
            return kept[1]
        if kept is not None:  # the size was changed (tests do)
            kept[1].shutdown(wait=True)
        pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"{self.worker}-{kind}")
        self._pools[kind] = (size, pool)
        return pool

    def close(self) -> None:
        """Stop the relay's threads (they also stop when the relay is dropped)."""
        for _, pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()

    def _deliver_group(self, group: list[tuple[Any, dict[str, Any]]]) -> list[int]:
        """One customer's messages: its events fanned out to the shop's webhooks in one
        transaction, then published; its notifications delivered by one ``send_many`` (a
        transaction for all their inbox rows and records). Returns the ids sent."""
        delivered: list[int] = []
        events: list[tuple[Any, dict[str, Any]]] = []
        notes: list[tuple[Any, dict[str, Any]]] = []
        for row, payload in group:
            _bind(row.id, row.topic, payload)
            if row.topic == Topic.EVENT:
                events.append((row, payload))
            elif row.topic == Topic.NOTIFY:
                notes.append((row, payload))
            elif row.topic == Topic.LOGISTICS_BOOK:
                self._book_return(row.id, row.attempts, row.key, payload)
            else:  # written by a newer version, or by hand: never guess
                self._park(row.id, f"unknown topic {row.topic!r}")
        for row, payload in self._fan_out(events):
            _bind(row.id, row.topic, payload)
            publish = partial(self.publisher.publish, payload, key=row.key)
            if self._deliver(row.id, row.attempts, Topic.EVENT, publish):
                delivered.append(row.id)
        self._notify(notes, delivered)
        return delivered

    def _notify(self, notes: list[tuple[Any, dict[str, Any]]], delivered: list[int]) -> None:
        if not notes:
            return
        try:
            failed = self.notifier.send_many([(payload, row.key) for row, payload in notes])
        except Exception as exc:  # a receiver's failure must not stop the relay
            failed = {row.key: exc for row, _ in notes}
        for row, payload in notes:
            _bind(row.id, row.topic, payload)
            error = failed.get(row.key)
            if error is not None:
                self._retry_later(
                    row.id, row.attempts, Topic.NOTIFY, f"{type(error).__name__}: {error}"
                )
                continue
            fault_point("relay.after_send")
            delivered.append(row.id)

    def drain(self, *, rounds: int = 100) -> int:
        """Run until nothing is due (tests and the demo); returns messages handled."""
        total = 0
        for _ in range(rounds):
            handled = self.run_once()
            total += handled
            if not handled:
                break
        return total

    # -- claiming ---------------------------------------------------------------------------

    def _claim(self, batch: int) -> list[Any]:
        """Up to ``batch`` gateway refunds and up to ``batch`` other messages, each kind in the
        order it was written: the money does not wait behind the notifications and events
        that the same refunds queued before it (seven per refund in bench/relay_bench.py),
        and they are not starved by it either."""
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            rows: list[Any] = []
            for money in (True, False):
                query = (
                    select(
                        outbox.c.id,
                        outbox.c.topic,
                        outbox.c.key,
                        outbox.c.payload,
                        outbox.c.attempts,
                        outbox.c.created_at,
                        outbox.c.customer_id,
                    )
                    .where(
                        # as literals, the conditions of the partial indexes the claim walks
                        # (ix_outbox_money, ix_outbox_pending: migration 0023)
                        text(OUTBOX_MONEY if money else OUTBOX_PENDING),
                        outbox.c.available_at <= now,
                        *(() if money else (outbox.c.topic != Topic.GATEWAY_REFUND,)),
                    )
                    .order_by(outbox.c.id)
                    .limit(batch)
                )
                if uow.dialect == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                rows += uow.conn.execute(query).all()
            rows.sort(key=lambda r: r.id)
            if rows:
                uow.conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([r.id for r in rows]))
                    .values(available_at=now + self.lease, attempts=outbox.c.attempts + 1)
                )
            uow.commit()
        return list(rows)

    def _done(self, conn: Connection, message_id: int | list[int], now: datetime) -> None:
        ids = message_id if isinstance(message_id, list) else [message_id]
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids))
            .values(status="done", done_at=now, last_error=None)
        )

    def _park(self, message_id: int, error: str) -> None:
        """A message the relay cannot deliver at all: dead at once, for an operator."""
        log.error("relay.dead", error=error)
        with UnitOfWork(self.engine) as uow:
            uow.conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(status="dead", last_error=error[:2000])
            )
            uow.commit()

    def _retry_later(
        self, message_id: int, attempts: int, topic: str, error: str, *, call: _Also | None = None
    ) -> bool:
        """Schedule another try (``call``: recorded in the same transaction); returns True when
        the message has used up its attempts."""
        now = self.clock()
        dead = attempts + 1 >= MAX_ATTEMPTS[topic]
        (log.error if dead else log.warning)(
            "relay.dead" if dead else "relay.retry", attempts=attempts + 1, error=error[:300]
        )
        with UnitOfWork(self.engine) as uow:
            if call is not None:
                call(uow.conn, now)
            uow.conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(
                    status="dead" if dead else "pending",
                    last_error=error[:2000],
                    available_at=now + backoff(attempts + 1),
                )
            )
            uow.commit()
        return dead

    # -- notifications and events -----------------------------------------------------------

    def _fan_out(
        self, events: list[tuple[Any, dict[str, Any]]]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """The shop's webhooks of domain events (services/shop_webhooks/fanout.py; one
        customer's, in one transaction), queued before the event publisher is called and apart
        from it: a broker that is down does not hold the shop's webhooks back. Repeating it (a
        retry) adds nothing. Returns the events to publish: none when it failed (they are tried
        again later, like a failed delivery)."""
        if not events:
            return []
        try:
            with UnitOfWork(self.engine) as uow:
                now = self.clock()
                for row, payload in events:
                    fan_out(
                        uow.conn, key=row.key, payload=payload, occurred_at=row.created_at, now=now
                    )
                uow.commit()
        except Exception as exc:  # the store's trouble must not stop the relay
            for row, payload in events:
                _bind(row.id, row.topic, payload)
                self._retry_later(row.id, row.attempts, Topic.EVENT, f"webhook fan-out: {exc!r}")
            return []
        return events

    def _deliver(
        self, message_id: int, attempts: int, topic: str, send: Callable[[], None]
    ) -> bool:
        """Send; True when the receiver took it (the caller marks it done, with the round's
        others: a crash before that sends it again under its key, which receivers dedupe)."""
        try:
            send()
        except Exception as exc:  # a receiver's failure must not stop the relay
            self._retry_later(message_id, attempts, topic, f"{type(exc).__name__}: {exc}")
            return False
        fault_point("relay.after_send")
        return True

    def _mark_done(self, message_ids: list[int]) -> None:
        if not message_ids:
            return
        with UnitOfWork(self.engine) as uow:
            self._done(uow.conn, message_ids, self.clock())
            uow.commit()
        for _ in message_ids:
            fault_point("relay.after_record")

    # -- return labels and pickups ----------------------------------------------------------

    def _book_return(self, message_id: int, attempts: int, key: str, p: dict[str, Any]) -> None:
        if self.logistics is None:
            self._retry_later(message_id, attempts, "logistics.book", "no logistics provider")
            return
        if not self._still_awaiting_return(p["case_id"]):
            # Cancelled or closed before the label was booked: book nothing.
            now = self.clock()
            with UnitOfWork(self.engine) as uow:
                trail = AuditTrail(
                    actor=self.worker, at=now, customer_id=_customer_of_case(uow.conn, p["case_id"])
                )
                trail.record(
                    "logistics.skipped",
                    case_id=p["case_id"],
                    why="the case no longer awaits its return",
                )
                trail.flush(uow.conn)
                self._done(uow.conn, message_id, now)
                uow.commit()
            return
        try:
            booking = self.logistics.book_return(
                rma=p["rma"],
                service=p["service"],
                from_address=p["from_address"],
                to_address=p["to_address"],
                key=key,
            )
        except RefundryError as exc:
            if exc.code.endswith((".timeout", ".unavailable")):
                self._retry_later(message_id, attempts, "logistics.book", str(exc))
            else:  # refused (address not served…): an agent arranges the return
                self._dead_letter_case(message_id, p, exc)
            return
        fault_point("relay.after_send")
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            record_booking(
                uow.conn,
                case_id=p["case_id"],
                booking=booking,
                payer=p["payer"],
                at=now,
                actor=self.worker,
            )
            self._done(uow.conn, message_id, now)
            uow.commit()
        fault_point("relay.after_record")

    def _still_awaiting_return(self, case_id: str) -> bool:
        from refundry.store.tables import cases

        with UnitOfWork(self.engine, readonly=True) as uow:
            state = uow.conn.execute(select(cases.c.state).where(cases.c.id == case_id)).scalar()
        return state == "awaiting_return"

    def _dead_letter_case(self, message_id: int, p: dict[str, Any], exc: RefundryError) -> None:
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            uow.conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(status="dead", last_error=f"{exc.code}: {exc.message}"[:2000])
            )
            trail = AuditTrail(
                actor=self.worker, at=now, customer_id=_customer_of_case(uow.conn, p["case_id"])
            )
            trail.record(
                "logistics.refused", case_id=p["case_id"], error=exc.code, message=exc.message
            )
            trail.flush(uow.conn)
            uow.commit()

    # -- gateway refunds --------------------------------------------------------------------

    def _ask(self, p: dict[str, Any]) -> _Asked:
        """The gateway's answer to a refund message (a timeout resolved by a lookup), or the
        error it came to; no database here: this runs on the pool's threads."""
        key = p["idempotency_key"]
        try:
            try:
                return self.gateway.refund(
                    idempotency_key=key,
                    transaction_id=p["transaction_id"],
                    amount=p["amount"],
                    currency=p["currency"],
                )
            except GatewayTimeout as timeout:
                found = self.gateway.lookup(idempotency_key=key)
                if found is None:
                    return timeout
                return found
        except GatewayError as exc:
            return exc

    def _gateway_failed(
        self, message_id: int, attempts: int, p: dict[str, Any], asked: GatewayError
    ) -> None:
        error = {"error": asked.code, "message": asked.message}
        if isinstance(asked, (GatewayTimeout, GatewayUnavailable)):
            outcome = "timeout" if isinstance(asked, GatewayTimeout) else "unavailable"
            if self._retry_later(
                message_id,
                attempts,
                "gateway.refund",
                str(asked),
                call=partial(self._record_call, p=p, kind="request", outcome=outcome, answer=error),
            ):
                self._gave_up(p, message_id)
            return
        # Not a passing fault: a reused key with other parameters, a protocol or credentials
        # problem. Retrying cannot help; the message is parked for an operator and the tender
        # stays pending (its outcome at the gateway is not known to be a refusal).
        self._dead_letter(
            message_id,
            p,
            asked,
            call=partial(self._record_call, p=p, kind="request", outcome="error", answer=error),
        )

    def _record_answers(self, answers: list[tuple[int, dict[str, Any], GatewayAnswer]]) -> None:
        """The gateway's answers, each with its call, its tender's outcome and its message done,
        in one transaction (a commit per answer was most of a refund's time), by a fixed number
        of statements (services/refunds/tender_outcomes.py). If it fails, each answer is
        recorded on its own, so one message's trouble does not lose the others' (and is raised
        after them)."""
        if not answers:
            return
        try:
            with UnitOfWork(self.engine) as uow:
                now = self.clock()
                for message_id, p, answer in answers:
                    fault_point("relay.after_send")
                    _bind(message_id, Topic.GATEWAY_REFUND, p)
                    log.info("relay.gateway_answer", status=answer.status, code=answer.code)
                self._settle_in(uow.conn, answers, now=now)
                uow.commit()
        except Exception:
            if len(answers) == 1:
                raise
            log.warning("relay.answers_one_by_one", answers=len(answers), exc_info=True)
            failed: Exception | None = None
            for one in answers:
                try:
                    self._record_answers([one])
                except Exception as exc:
                    failed = failed or exc
            if failed is not None:
                raise failed from None
            return
        for _ in answers:
            fault_point("relay.after_record")

    def _settle_in(
        self,
        conn: Connection,
        answers: list[tuple[int, dict[str, Any], GatewayAnswer]],
        *,
        now: datetime,
        kind: str = "request",
    ) -> None:
        self._record_calls(
            conn,
            now,
            [
                (p, kind, answer.status, answer.raw or {"status": answer.status})
                for _, p, answer in answers
            ],
        )
        record_tender_outcomes(
            conn,
            [
                TenderAnswer(
                    refund_id=p["refund_id"],
                    tender_id=p["tender_id"],
                    idempotency_key=p["idempotency_key"],
                    status=TENDER_STATUS[answer.status],
                    gateway_refund_id=answer.gateway_refund_id,
                    code=answer.code,
                )
                for _, p, answer in answers
            ],
            at=now,
            actor=self.worker,
        )
        self._done(conn, [message_id for message_id, _, _ in answers], now)

    def _gave_up(self, p: dict[str, Any], message_id: int) -> None:
        """Attempts used up on timeouts and outages: ask the gateway one last time. Only when
        it knows nothing of the key is the refund failed (nothing moved); otherwise its answer
        counts, and if it cannot be asked either the message is parked for an operator."""
        try:
            found = self.gateway.lookup(idempotency_key=p["idempotency_key"])
        except GatewayError as exc:
            self._dead_letter(message_id, p, exc)
            return
        if found is None:
            self._unreachable(p)
            return
        with UnitOfWork(self.engine) as uow:
            self._settle_in(uow.conn, [(message_id, p, found)], now=self.clock(), kind="lookup")
            uow.commit()

    def _dead_letter(
        self,
        message_id: int,
        p: dict[str, Any],
        exc: GatewayError,
        *,
        call: _Also | None = None,
    ) -> None:
        log.error("relay.dead_letter", error=exc.code, detail=exc.message[:300])
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            if call is not None:
                call(uow.conn, now)
            uow.conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(status="dead", last_error=f"{exc.code}: {exc.message}"[:2000])
            )
            trail = AuditTrail(
                actor=self.worker, at=now, customer_id=_customer_of(uow.conn, p["order_id"])[0]
            )
            trail.record(
                "gateway.dead_letter",
                order_id=p["order_id"],
                refund_id=p["refund_id"],
                tender_id=p["tender_id"],
                error=exc.code,
                message=exc.message,
            )
            trail.flush(uow.conn)
            uow.commit()

    @staticmethod
    def _record_call(
        conn: Connection,
        at: datetime,
        *,
        p: dict[str, Any],
        kind: str,
        outcome: str,
        answer: dict[str, Any],
    ) -> None:
        Relay._record_calls(conn, at, [(p, kind, outcome, answer)])

    @staticmethod
    def _record_calls(
        conn: Connection, at: datetime, calls: list[tuple[dict[str, Any], str, str, dict[str, Any]]]
    ) -> None:
        """Each (payload, kind, outcome, answer): one ``gateway_calls`` row, by one statement."""
        _INSERT_CALLS.run_many(
            conn,
            [
                {
                    "refund_id": p["refund_id"],
                    "tender_id": p["tender_id"],
                    # a message queued before 0021 does not name the customer: its order does
                    "customer_id": p.get("customer_id") or _customer_of(conn, p["order_id"])[0],
                    "idempotency_key": p["idempotency_key"],
                    "kind": kind,
                    "outcome": outcome,
                    "answer": json.dumps(answer, ensure_ascii=False, sort_keys=True, default=str),
                    "at": at,
                }
                for p, kind, outcome, answer in calls
            ],
        )

    def _unreachable(self, p: dict[str, Any]) -> None:
        """The gateway knows nothing of the key after every attempt: nothing moved, the
        tender's refund failed (the message is dead already)."""
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            record_tender_outcome(
                uow.conn,
                refund_id=p["refund_id"],
                tender_id=p["tender_id"],
                idempotency_key=p["idempotency_key"],
                status="failed",
                gateway_refund_id=None,
                code=UNREACHABLE,
                at=now,
                actor=self.worker,
            )
            uow.commit()


def _customer_of_case(conn: Connection, case_id: str) -> str | None:
    """Whose audit chain an act on the case goes to (None: no such case, the system's)."""
    from refundry.store.tables import cases

    found = conn.execute(select(cases.c.customer_id).where(cases.c.id == case_id)).scalar()
    return None if found is None else str(found)


def _customer_of(conn: Connection, order_id: str) -> tuple[str, str]:
    from refundry.store.tables import customers, orders

    row = conn.execute(
        select(orders.c.customer_id, customers.c.locale)
        .join(customers, customers.c.id == orders.c.customer_id)
        .where(orders.c.id == order_id)
    ).one()
    return str(row.customer_id), str(row.locale)
