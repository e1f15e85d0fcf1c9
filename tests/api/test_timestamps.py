"""Every timestamp the API answers is RFC 3339 in UTC with ``Z`` (issue 12 point 5), whatever
offset the shop sent (the orders are ingested with ``+08:00``)."""

from __future__ import annotations

import re
from typing import Any

from tests.api.conftest import ADMIN, AGENT, ALICE, ALICE_MIXED, World, bearer

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")
UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _stamps(value: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _stamps(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _stamps(v, f"{where}[{i}]")]
    if isinstance(value, str) and STAMP.match(value):
        return [(where, value)]
    return []


def test_every_answered_timestamp_is_utc_with_z(world: World) -> None:
    alice, agent, admin = bearer("customer", ALICE), bearer("agent", AGENT), bearer("admin", ADMIN)
    answers = [
        world.client.get(f"/v1/orders/{ALICE_MIXED}", headers=alice),
        world.client.get("/v1/cases", headers=alice),
        world.client.get("/v1/refunds", headers=admin),
        world.client.get("/v1/agent/queue", headers=agent),
        world.client.get(f"/v1/orders/{ALICE_MIXED}/audit", headers=agent),
        world.client.get("/v1/me/inbox", headers=alice),
        world.client.get("/v1/me/coupons", headers=alice),
        world.client.get(f"/v1/customers/{ALICE}", headers=admin),
    ]
    order = answers[0].json()
    line = order["lines"][0]["line_id"]
    answers.append(
        world.client.post(
            f"/v1/orders/{ALICE_MIXED}/refund-preview",
            headers=alice,
            json={"lines": [{"line_id": line, "quantity": 1}], "reason": "quality_issue"},
        )
    )
    found = []
    for answer in answers:
        assert answer.status_code == 200, answer.text
        found += _stamps(answer.json(), str(answer.url.path))
    assert len(found) > 10, found
    assert [(w, s) for w, s in found if not UTC_Z.match(s)] == []
