"""The relay's and workers' health for ``/metrics``, from cheap indexed queries.

- outbox: messages due now and how long the oldest has waited (lag), per topic, from the
  pending messages' partial index ``ix_outbox_pending``; dead letters per topic from
  ``ix_outbox_dead`` (migration 0023);
- gateway calls that did not get an answer (timeout, unavailable, error) per outcome, from
  ``ix_gateway_calls_outcome``;
- each worker's seconds since its last finished round (``worker_heartbeats``, a row a worker);
- the shop's webhooks: deliveries waiting (pending) and given up (failed), from
  ``ix_webhook_deliveries_due``, and endpoints disabled (by an admin or their failures).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, text

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    OUTBOX_DEAD,
    OUTBOX_PENDING,
    gateway_calls,
    outbox,
    webhook_deliveries,
    webhook_endpoints,
    worker_heartbeats,
)

__all__ = ["GATEWAY_ERRORS", "OperationsFigures", "operations_figures"]

GATEWAY_ERRORS = ("timeout", "unavailable", "error")  # outcomes that were not an answer


@dataclass(frozen=True, slots=True)
class OperationsFigures:
    due: Mapping[str, int]  # topic -> messages due now, not yet delivered
    lag_seconds: Mapping[str, float]  # topic -> how long the oldest due message has waited
    dead: Mapping[str, int]  # topic -> dead letters waiting for an operator
    gateway_errors: Mapping[str, int]  # outcome -> gateway calls without an answer
    heartbeat_age_seconds: Mapping[str, float]  # worker -> seconds since its last round
    webhook_deliveries: Mapping[str, int]  # pending | failed -> deliveries to the shop
    webhook_endpoints_disabled: int  # the shop's endpoints nothing is sent to


def operations_figures(engine: Engine, actor: Actor, *, now: datetime) -> OperationsFigures:
    access.require(actor, "metrics.read")
    o = outbox.c
    with UnitOfWork(engine, readonly=True) as uow:
        conn = uow.conn
        due: dict[str, int] = {}
        lag: dict[str, float] = {}
        for topic, count, oldest in conn.execute(
            select(o.topic, func.count(), func.min(o.available_at))
            .where(text(OUTBOX_PENDING), o.available_at <= now)  # ix_outbox_pending
            .group_by(o.topic)
            .order_by(o.topic)
        ):
            due[topic] = int(count)
            lag[topic] = max((now - oldest).total_seconds(), 0.0)
        dead = {
            topic: int(n)
            for topic, n in conn.execute(
                select(o.topic, func.count())
                .where(text(OUTBOX_DEAD))  # ix_outbox_dead
                .group_by(o.topic)
                .order_by(o.topic)
            )
        }
        errors = dict.fromkeys(GATEWAY_ERRORS, 0)
        for outcome, n in conn.execute(
            select(gateway_calls.c.outcome, func.count())
            .where(gateway_calls.c.outcome.in_(GATEWAY_ERRORS))
            .group_by(gateway_calls.c.outcome)
        ):
            errors[outcome] = int(n)
        beats = {
            name: max((now - at).total_seconds(), 0.0)
            for name, at in conn.execute(
                select(worker_heartbeats.c.name, worker_heartbeats.c.beat_at).order_by(
                    worker_heartbeats.c.name
                )
            )
        }
        hooks = dict.fromkeys(("pending", "failed"), 0)
        d = webhook_deliveries.c
        for status, n in conn.execute(
            select(d.status, func.count()).where(d.status.in_(hooks)).group_by(d.status)
        ):
            hooks[status] = int(n)
        disabled = conn.execute(
            select(func.count()).where(webhook_endpoints.c.status == "disabled")
        ).scalar_one()
    return OperationsFigures(
        due=due,
        lag_seconds=lag,
        dead=dead,
        gateway_errors=errors,
        heartbeat_age_seconds=beats,
        webhook_deliveries=hooks,
        webhook_endpoints_disabled=int(disabled),
    )
