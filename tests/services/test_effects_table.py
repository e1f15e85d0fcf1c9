"""The store's effect dispatch: one handler per effect kind, and an unknown kind raises."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from refundry.domain.json_io import plan_from_json
from refundry.domain.plan_types import EffectKind
from refundry.services.refunds import effects
from tests.domain.test_scenarios import SCENARIOS


def test_every_effect_kind_has_exactly_one_handler() -> None:
    assert set(effects._HANDLERS) == set(EffectKind)


def test_docs_list_exactly_the_effect_kinds() -> None:
    text = (Path(__file__).parents[2] / "docs" / "plan-json.md").read_text(encoding="utf-8")
    listed = text.split("- `effects[].type`", 1)[1].split("\n\n", 1)[0].split("\n- ", 1)[0]  # up to the next bullet
    listed = re.sub(r"\([^)]*\)", "", listed)  # drop "(each with `reason` …)" asides
    names = set(re.findall(r"`([a-z_]+)`", listed))
    assert names == {k.value for k in EffectKind}


def test_the_engine_emits_only_known_kinds_over_the_scenario_table() -> None:
    seen: set[str] = set()
    for scenario in SCENARIOS:
        history: list[dict[str, object]] = []
        for step in scenario.steps:
            plan = plan_from_json(
                order=copy.deepcopy(scenario.order),
                snapshot=copy.deepcopy(step.snapshot or scenario.snapshot),
                request=copy.deepcopy(step.request),
                history=copy.deepcopy(history),
                policy=copy.deepcopy(scenario.policy),
                now=scenario.now,
            )
            seen |= {e["type"] for e in plan["effects"]}
            history.append(plan)
    assert seen <= {k.value for k in EffectKind}
    assert len(seen) >= 20  # the table exercises nearly every kind


def test_an_unknown_effect_kind_raises_instead_of_writing_nothing() -> None:
    with pytest.raises(ValueError, match="'coupon_teleport' is not a valid EffectKind"):
        effects._apply_effect(None, {"type": "coupon_teleport"})  # type: ignore[arg-type]


def test_an_unknown_outbox_topic_is_refused_when_written_and_parked_when_read(
    engine: object,
) -> None:
    from sqlalchemy import Engine, insert, select

    from refundry.adapters.clock import ManualClock
    from refundry.bootstrap import build
    from refundry.services.outbox.messages import enqueue
    from refundry.services.uow import UnitOfWork
    from refundry.settings import Settings
    from refundry.store.tables import outbox

    assert isinstance(engine, Engine)
    from datetime import UTC, datetime

    now = datetime(2026, 12, 1, tzinfo=UTC)
    with UnitOfWork(engine) as uow, pytest.raises(ValueError, match="not an outbox topic"):
        enqueue(uow.conn, topic="fax", key="k-fax", payload={}, at=now)
    with UnitOfWork(engine) as uow:  # one written past enqueue (a newer version, by hand)
        uow.conn.execute(
            insert(outbox).values(
                topic="fax",
                key="k-fax",
                status="pending",
                attempts=0,
                available_at=now,
                created_at=now,
                payload="{}",
            )
        )
        uow.commit()
    runtime = build(
        Settings(dev=True, database_url=str(engine.url)), clock=ManualClock(now), engine=engine
    )
    assert runtime.relay().run_once() == 1
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(select(outbox.c.status, outbox.c.last_error)).one()
    assert (row.status, row.last_error) == ("dead", "unknown topic 'fax'")
    assert runtime.publisher.events == {}  # type: ignore[attr-defined]  # never published
