"""``/v1/webhook-endpoints`` over HTTP on both backends: the admin registers an endpoint (201,
``Location``, the secret in this answer only), reads, lists, disables / enables, rotates,
reads the delivery log, replays and deletes; bad input is problem+json with its code and
changes nothing. Who may call them: tests/api/test_authorization.py (``admin_only``)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ADMIN, World, bearer, db_snapshot, problem_of, snapshot_diff

AS_ADMIN = bearer("admin", ADMIN)
BASE = "/v1/webhook-endpoints"


def _register(world: World, **body: Any) -> Any:
    doc = {"url": "https://shop.example/hooks", "event_types": ["refund.applied"], **body}
    return world.client.post(BASE, json=doc, headers=AS_ADMIN)


def test_the_admin_manages_an_endpoint_and_sees_the_secret_once(world: World) -> None:
    r = _register(world, event_types=["refund.applied", "effect.coupon_reissue"], description="erp")
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["location"] == f"{BASE}/{made['id']}"
    assert made["secret"].startswith("whsec_")
    assert (made["status"], made["event_types"], made["description"]) == (
        "enabled",
        ["refund.applied", "effect.coupon_reissue"],
        "erp",
    )
    read = world.client.get(r.headers["location"], headers=AS_ADMIN).json()
    assert "secret" not in read and read["id"] == made["id"]
    listed = world.client.get(BASE, headers=AS_ADMIN).json()["items"]
    # oldest first, then by id: both were registered at the test's fixed NOW
    assert [e["id"] for e in listed] == sorted([world.webhook_endpoint, made["id"]])
    assert all("secret" not in e for e in listed)

    off = world.client.post(f"{BASE}/{made['id']}/disable", headers=AS_ADMIN).json()
    assert (off["status"], off["disabled_reason"]) == ("disabled", f"disabled by admin:{ADMIN}")
    on = world.client.post(f"{BASE}/{made['id']}/enable", headers=AS_ADMIN).json()
    assert (on["status"], on["disabled_reason"]) == ("enabled", None)
    rotated = world.client.post(f"{BASE}/{made['id']}/rotate-secret", headers=AS_ADMIN)
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != made["secret"]

    log = world.client.get(f"{BASE}/{made['id']}/deliveries", headers=AS_ADMIN)
    assert log.json() == {"items": [], "next_cursor": None}
    replayed = world.client.post(
        f"{BASE}/{made['id']}/replay",
        json={"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
        headers=AS_ADMIN,
    )
    assert (replayed.status_code, replayed.json()) == (202, {"queued": 0})

    gone = world.client.delete(f"{BASE}/{made['id']}", headers=AS_ADMIN)
    assert (gone.status_code, gone.content) == (204, b"")
    again = world.client.get(f"{BASE}/{made['id']}", headers=AS_ADMIN)
    problem_of(again, 404, "webhook.endpoint_not_found")


def test_event_types_lists_the_catalogue(world: World) -> None:
    items = world.client.get("/v1/webhook-event-types", headers=AS_ADMIN).json()["items"]
    names = [i["type"] for i in items]
    for name in ("refund.applied", "refund.refunded", "case.approved", "effect.coupon_reissue"):
        assert name in names
    assert "inventory.restock" in names


def test_bad_input_is_refused_with_its_code_and_changes_nothing(world: World) -> None:
    before = db_snapshot(world.engine)
    problem_of(_register(world, url="ftp://shop.example/x"), 422, "webhook.url_invalid", "url")
    problem_of(
        _register(world, url="https://user:pw@shop.example/x"), 422, "webhook.url_invalid", "url"
    )
    problem_of(
        _register(world, event_types=["refund.applied", "refund.teleported"]),
        422,
        "webhook.event_type_unknown",
        "event_types[1]",
    )
    hook = f"{BASE}/{world.webhook_endpoint}/replay"
    problem_of(
        world.client.post(hook, json={}, headers=AS_ADMIN),
        422,
        "webhook.replay_invalid",
        "event_id",
    )
    problem_of(
        world.client.post(
            hook,
            json={"since": "2026-12-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
            headers=AS_ADMIN,
        ),
        422,
        "webhook.replay_invalid",
        "until",
    )
    problem_of(
        world.client.post(hook, json={"event_id": "msg_unknown"}, headers=AS_ADMIN),
        404,
        "webhook.event_not_found",
    )
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
