"""Every endpoint's access rule, walked from the OpenAPI document (SPEC §5: every object access
is checked).

``EXPECTED`` gives each operation of ``app.openapi()`` a policy; an operation missing from it
fails ``test_every_operation_has_a_policy``, so no endpoint can be added without deciding who
may call it — and then the checks below cover it on their own:

- ``owner_only``: the operation acts on an object of one customer (its path names it, or its
  body does). Customer Bob acting on Alice's object gets 404 problem+json with a
  ``*.not_found`` code and the database (every table, row by row) is unchanged; so does
  merchant m-3, which has no line in Alice's orders (404, or 403 where merchants may not call
  the operation at all). Alice herself reads her own objects (200), so the 404 is not vacuous.
- ``staff_only``: a customer (even the owner) and a merchant get 403 ``auth.forbidden``;
  nothing changes.
- ``self``: the caller's own data (``/v1/me/*``, lists): Bob's answer never contains any of
  Alice's ids.
- ``admin_only``: the shop's back end alone (webhook endpoints): a customer, a merchant and an
  agent get 403 ``auth.forbidden`` and nothing changes; the admin reaches it.
- ``public``: answers without a token. ``webhook_signed``: an unsigned body is refused (4xx)
  and nothing changes.

Every operation that is not public or a webhook answers 401 without a token, changing nothing.
Merchants reach only their own lines: m-1 reading an order or case of Alice's with lines of m-1
and m-2 never sees m-2's line (id, SKU or title), and m-1 reads a case of its own lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from refundry.api.app import create_app
from refundry.services.access import Actor
from refundry.services.bulk.jobs import JobStart
from refundry.services.bulk.resource import start_or_dry_run
from refundry.settings import Settings
from tests.api.conftest import (
    ADMIN,
    AGENT,
    ALICE,
    ALICE_M1,
    ALICE_MIXED,
    BOB,
    BOB_COUPON,
    BOB_ORDER,
    LINE_ALICE_M1,
    LINE_ALICE_ONLY_M1,
    M1,
    M2,
    M2_MARKERS,
    M3,
    NOW,
    SECRET,
    World,
    bearer,
    db_snapshot,
    order_doc,
    snapshot_diff,
)
from tests.photo_files import png

METHODS = ("get", "post", "put", "patch", "delete")
POLICIES = ("owner_only", "staff_only", "admin_only", "self", "public", "webhook_signed")

# (METHOD, path template) -> who may call it. Every operation of the OpenAPI document must be
# here; a new endpoint fails test_every_operation_has_a_policy until it is given one.
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("POST", "/v1/admin/tokens/revoke"): "staff_only",  # admin
    ("GET", "/metrics"): "staff_only",  # admin
    ("POST", "/v1/bulk-refunds"): "admin_only",  # bulk refund jobs: the shop's back end
    ("GET", "/v1/bulk-refunds/{job_id}"): "admin_only",
    ("GET", "/v1/bulk-refunds/{job_id}/report"): "admin_only",
    ("POST", "/v1/orders"): "staff_only",  # the shop's back end (admin)
    ("POST", "/v1/orders/{order_id}/status"): "staff_only",  # the shop's back end (admin)
    ("POST", "/v1/orders/{order_id}/refunds"): "owner_only",  # the desk; Bob: 404
    ("GET", "/v1/refunds/{refund_id}"): "owner_only",
    ("GET", "/v1/refunds"): "self",
    ("GET", "/v1/orders/{order_id}"): "owner_only",
    ("POST", "/v1/orders/{order_id}/refund-preview"): "owner_only",
    ("GET", "/v1/orders/{order_id}/audit"): "owner_only",  # its customer, its merchants, staff
    ("POST", "/v1/cases"): "owner_only",  # the body names Alice's order
    ("GET", "/v1/cases"): "self",
    ("GET", "/v1/cases/{case_id}"): "owner_only",
    ("POST", "/v1/cases/{case_id}/approve"): "owner_only",
    ("POST", "/v1/cases/{case_id}/reject"): "owner_only",
    ("POST", "/v1/cases/{case_id}/cancel"): "owner_only",
    ("POST", "/v1/cases/{case_id}/ship"): "owner_only",
    ("POST", "/v1/cases/{case_id}/receive"): "owner_only",
    ("POST", "/v1/cases/{case_id}/inspect"): "owner_only",
    ("POST", "/v1/cases/{case_id}/resolve"): "owner_only",
    ("POST", "/v1/cases/{case_id}/rate"): "owner_only",
    # the desk's acts: Bob and m-3 are told there is no such case; Alice may not take them
    ("POST", "/v1/cases/{case_id}/escalate"): "owner_only",
    ("POST", "/v1/cases/{case_id}/note"): "owner_only",
    ("POST", "/v1/cases/{case_id}/claim"): "owner_only",
    ("POST", "/v1/cases/{case_id}/assign"): "owner_only",
    ("POST", "/v1/cases/{case_id}/retry-refund"): "owner_only",
    ("POST", "/v1/cases/{case_id}/refund-to-wallet"): "owner_only",
    ("POST", "/v1/cases/{case_id}/recover-debt"): "owner_only",
    ("POST", "/v1/cases/{case_id}/write-off-debt"): "owner_only",
    ("POST", "/v1/identity/codes"): "self",
    ("POST", "/v1/identity/passkeys/registration-options"): "self",
    ("POST", "/v1/identity/passkeys"): "self",  # Bob registers his own (World.extra)
    ("GET", "/v1/identity/passkeys"): "self",
    ("DELETE", "/v1/identity/passkeys/{passkey_id}"): "owner_only",
    ("POST", "/v1/identity/passkeys/assertion-options"): "owner_only",  # the body names the order
    ("GET", "/v1/cases/{case_id}/messages"): "staff_only",  # agents: how the messages fared
    # a case's photos: its customer, the merchant of its lines, staff (services/access.py (11))
    ("POST", "/v1/cases/{case_id}/photos"): "owner_only",
    ("GET", "/v1/cases/{case_id}/photos"): "owner_only",
    ("GET", "/v1/cases/{case_id}/photos/{photo_id}"): "owner_only",
    ("GET", "/v1/me/coupons"): "self",
    ("GET", "/v1/me/points"): "self",
    ("GET", "/v1/me/eligibility"): "self",
    ("GET", "/v1/me/inbox"): "self",
    ("POST", "/v1/me/inbox/{message_id}/read"): "owner_only",
    ("GET", "/v1/agent/queue"): "staff_only",
    ("POST", "/v1/customers/{customer_id}/suspension"): "staff_only",
    ("DELETE", "/v1/customers/{customer_id}/suspension"): "staff_only",
    ("GET", "/v1/customers/{customer_id}"): "staff_only",  # admin: the shop's back end
    ("PATCH", "/v1/customers/{customer_id}"): "staff_only",  # admin
    ("POST", "/v1/customers/{customer_id}/adjustments"): "staff_only",  # admin
    ("POST", "/v1/webhook-endpoints"): "admin_only",  # webhooks to the shop
    ("GET", "/v1/webhook-endpoints"): "admin_only",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): "admin_only",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/disable"): "admin_only",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/enable"): "admin_only",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "admin_only",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "admin_only",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): "admin_only",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): "admin_only",
    ("GET", "/v1/webhook-event-types"): "admin_only",
    ("POST", "/v1/webhooks/gateway"): "webhook_signed",
    ("POST", "/v1/webhooks/logistics"): "webhook_signed",
}

# Path parameters are filled by name with Alice's objects (World.ids); a parameter with a name
# not there fails test_every_operation_has_a_policy.
PATH_PARAMS = (
    "order_id",
    "case_id",
    "customer_id",
    "message_id",
    "refund_id",
    "passkey_id",
    "endpoint_id",
    "job_id",
    "photo_id",
)
# Multipart operations: the files they are sent (valid, so only the access rule refuses).
SAMPLE_FILES: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("POST", "/v1/cases/{case_id}/photos"): lambda: {"photo": ("p.png", png(), "image/png")},
}

_REQUEST = {
    "lines": [{"line_id": LINE_ALICE_M1, "quantity": 1}],
    "reason": "quality_issue",
    "kind": "refund_only",
}

# Sample bodies: valid for Alice's objects, so only the access rule can refuse them. An
# operation with a request body and no sample here gets one built from its schema.
SAMPLE_BODIES: dict[tuple[str, str], Callable[[World], Any]] = {
    ("POST", "/v1/orders"): lambda w: {
        "order": order_doc("ord-new-by-intruder", ALICE, [dict(_LINE_NEW)])
    },
    ("POST", "/v1/orders/{order_id}/refund-preview"): lambda w: dict(_REQUEST),
    ("POST", "/v1/orders/{order_id}/refunds"): lambda w: {
        **_REQUEST,
        "expected_plan_hash": "sha256:previewed",
    },
    ("POST", "/v1/orders/{order_id}/status"): lambda w: {
        "status": "completed",
        "at": "2026-11-24T03:00:00Z",
    },
    ("POST", "/v1/cases"): lambda w: {**_REQUEST, "order_id": ALICE_MIXED},
    ("POST", "/v1/cases/{case_id}/approve"): lambda w: {"comment": "looks fine"},
    ("POST", "/v1/cases/{case_id}/reject"): lambda w: {"comment": "not this time"},
    ("POST", "/v1/cases/{case_id}/cancel"): lambda w: {},
    ("POST", "/v1/cases/{case_id}/ship"): lambda w: {"tracking_number": "SF1234567890"},
    ("POST", "/v1/cases/{case_id}/receive"): lambda w: {},
    ("POST", "/v1/cases/{case_id}/inspect"): lambda w: {"result": "pass"},
    ("POST", "/v1/cases/{case_id}/resolve"): lambda w: {
        "resolution": "waiver",
        "comment": "goodwill",
    },
    ("POST", "/v1/cases/{case_id}/rate"): lambda w: {"rating": 5, "feedback": "ok"},
    ("POST", "/v1/cases/{case_id}/escalate"): lambda w: {"comment": "needs a second look"},
    ("POST", "/v1/cases/{case_id}/note"): lambda w: {"text": "the customer called"},
    ("POST", "/v1/cases/{case_id}/claim"): lambda w: {},
    ("POST", "/v1/cases/{case_id}/assign"): lambda w: {"agent_id": "wang"},
    ("POST", "/v1/cases/{case_id}/retry-refund"): lambda w: {"tender_id": "T1", "reason": "x"},
    ("POST", "/v1/cases/{case_id}/refund-to-wallet"): lambda w: {"tender_id": "T1"},
    ("POST", "/v1/cases/{case_id}/recover-debt"): lambda w: {
        "amount": {"amount": 100, "currency": "CNY"},
        "method": "external",
        "reference": "bank-1",
    },
    ("POST", "/v1/cases/{case_id}/write-off-debt"): lambda w: {
        "amount": {"amount": 100, "currency": "CNY"},
        "comment": "goodwill",
    },
    ("POST", "/v1/identity/codes"): lambda w: {"purpose": "case.submit"},
    ("POST", "/v1/identity/passkeys"): lambda w: w.extra["passkey_bob"],
    ("POST", "/v1/identity/passkeys/assertion-options"): lambda w: {
        **_REQUEST,
        "order_id": ALICE_MIXED,
    },
    ("PATCH", "/v1/customers/{customer_id}"): lambda w: {
        "account_created_at": "2020-01-01T00:00:00Z",
        "contact": {"phone": "+8613800009999", "channels": ["sms"]},
    },
    ("POST", "/v1/customers/{customer_id}/adjustments"): lambda w: {
        "kind": "points",
        "points": 1000,
        "source": {"type": "goodwill", "id": "gw-1"},
    },
    ("POST", "/v1/webhook-endpoints"): lambda w: {
        "url": "https://intruder.example/hooks",
        "event_types": ["*"],
    },
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): lambda w: {
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-12-01T00:00:00Z",
    },
}
_LINE_NEW = {
    "id": "ln-new",
    "sku": "SKU-NEW",
    "title": "New",
    "merchant_id": M1,
    "quantity": 1,
    "unit_price": 1000,
}


# -- the OpenAPI walk -------------------------------------------------------------------------


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in sorted(doc["paths"].items()):
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def path_params(op: dict[str, Any]) -> list[str]:
    return [p["name"] for p in op.get("parameters", []) if p.get("in") == "path"]


def fill_path(path: str, op: dict[str, Any], values: dict[str, Any]) -> str:
    for name in path_params(op):
        path = path.replace("{" + name + "}", str(values[name]))
    return path


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def synthesize(doc: dict[str, Any], schema: dict[str, Any], name: str, w: World) -> Any:
    """A minimal valid instance of ``schema``; ids named like path parameters are Alice's."""
    schema = _resolve(doc, schema)
    if name in w.ids():
        return w.ids()[name]
    if name == "line_id":
        return LINE_ALICE_M1
    for key in ("const", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            choices = [s for s in schema[key] if _resolve(doc, s).get("type") != "null"]
            return synthesize(doc, choices[0], name, w)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(doc, part))
        return synthesize(doc, merged, name, w)
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            key: synthesize(doc, props.get(key, {}), key, w) for key in schema.get("required", [])
        }
    if kind == "array":
        return [
            synthesize(doc, schema.get("items", {}), name, w)
            for _ in range(schema.get("minItems", 0))
        ]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return NOW.isoformat()
    return "x" * max(1, int(schema.get("minLength", 1)))


def body_for(doc: dict[str, Any], method: str, path: str, op: dict[str, Any], w: World) -> Any:
    if (method, path) in SAMPLE_BODIES:
        return SAMPLE_BODIES[(method, path)](w)
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return synthesize(doc, content["application/json"].get("schema", {}), "", w)


def call(
    w: World,
    doc: dict[str, Any],
    method: str,
    path: str,
    op: dict[str, Any],
    headers: dict[str, str],
    *,
    values: dict[str, Any] | None = None,
) -> Any:
    url = fill_path(path, op, values or w.ids())
    if (method, path) in SAMPLE_FILES:
        files = SAMPLE_FILES[(method, path)]()
        return w.client.request(method, url, headers=headers, files=files)
    body = body_for(doc, method, path, op, w)
    if body is None:
        return w.client.request(method, url, headers=headers)
    return w.client.request(method, url, headers=headers, json=body)


def _describe(r: Any) -> str:
    try:
        shown = json.dumps(r.json())[:300]
    except ValueError:
        shown = r.text[:300]
    return f"{r.status_code} {shown}"


def _code(r: Any) -> str:
    try:
        return str(r.json().get("code", ""))
    except (ValueError, AttributeError):
        return ""


class Failures:
    """Collects every violation of one walk, to report them all at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, method: str, path: str, what: str) -> None:
        self.items.append(f"{method} {path}: {what}")

    def check(self) -> None:
        assert not self.items, "\n" + "\n".join(self.items)


def unchanged(w: World, before: dict[str, Any]) -> str:
    return snapshot_diff(before, db_snapshot(w.engine))


def _doc_without_db(tmp: Path) -> dict[str, Any]:
    """The OpenAPI document (the app never touches its database to make it)."""
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp / 'unused.sqlite'}", secret=SECRET, dev=True),
        schema_check=False,
    )
    return app.openapi()


# -- the table is complete -------------------------------------------------------------------


def test_every_operation_has_a_policy(tmp_path: Path) -> None:
    doc = _doc_without_db(tmp_path)
    found = {(m, p): op for m, p, op in operations(doc)}
    missing = sorted(set(found) - set(EXPECTED))
    assert not missing, f"operations without an access policy in EXPECTED: {missing}"
    assert set(EXPECTED.values()) <= set(POLICIES)
    unknown_params = sorted(
        (m, p, name)
        for (m, p), op in found.items()
        for name in path_params(op)
        if name not in PATH_PARAMS
    )
    assert not unknown_params, f"path parameters with no filler in World.ids: {unknown_params}"
    stale = sorted(set(EXPECTED) - set(found))
    assert not stale, f"EXPECTED names operations the OpenAPI document lacks: {stale}"


def _ops(w: World, policy: str) -> tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]]]:
    doc = w.app.openapi()
    chosen = [(m, p, op) for m, p, op in operations(doc) if EXPECTED.get((m, p)) == policy]
    return doc, chosen


# -- owner_only --------------------------------------------------------------------------------


def test_customer_b_gets_404_on_alice_objects_and_nothing_changes(world: World) -> None:
    doc, ops = _ops(world, "owner_only")
    assert ops, "no owner_only operation in the document"
    failures = Failures()
    for method, path, op in ops:
        before = db_snapshot(world.engine)
        r = call(world, doc, method, path, op, bearer("customer", BOB))
        if r.status_code != 404 or not _code(r).endswith("not_found"):
            failures.add(
                method, path, f"Bob on Alice's object: expected 404 *.not_found, got {_describe(r)}"
            )
        elif r.headers.get("content-type") != "application/problem+json":
            failures.add(method, path, f"404 is not problem+json: {r.headers.get('content-type')}")
        diff = unchanged(world, before)
        if diff:
            failures.add(method, path, f"Bob's refused request changed the database: {diff}")
    failures.check()


def test_merchant_without_lines_gets_404_and_nothing_changes(world: World) -> None:
    doc, ops = _ops(world, "owner_only")
    failures = Failures()
    for method, path, op in ops:
        before = db_snapshot(world.engine)
        r = call(world, doc, method, path, op, bearer("merchant", M3))
        ok = (r.status_code == 404 and _code(r).endswith("not_found")) or (
            r.status_code == 403 and _code(r) == "auth.forbidden"
        )
        if not ok:
            failures.add(
                method,
                path,
                f"merchant m-3 (no lines) on Alice's object: expected "
                f"404 *.not_found or 403 auth.forbidden, got {_describe(r)}",
            )
        diff = unchanged(world, before)
        if diff:
            failures.add(method, path, f"m-3's refused request changed the database: {diff}")
    failures.check()


def test_the_owner_reads_her_own_objects(world: World) -> None:
    """The control for the 404s above: the same ids answer Alice."""
    doc, ops = _ops(world, "owner_only")
    failures = Failures()
    for method, path, op in ops:
        if method != "GET":
            continue
        r = call(world, doc, method, path, op, bearer("customer", ALICE))
        if r.status_code != 200:
            failures.add(method, path, f"Alice on her own object: {_describe(r)}")
    failures.check()


# -- staff_only and admin_only -----------------------------------------------------------------


def _forbidden_to(
    world: World, policy: str, callers: tuple[tuple[str, str], ...], *, control: str
) -> None:
    """Each caller gets 403 auth.forbidden on every ``policy`` operation and nothing changes;
    ``control`` (a role) reads each GET of them (200), so the 403s are not vacuous."""
    doc, ops = _ops(world, policy)
    assert ops, f"no {policy} operation in the document"
    failures = Failures()
    for method, path, op in ops:
        for who, sub in callers:
            before = db_snapshot(world.engine)
            r = call(world, doc, method, path, op, bearer(who, sub))
            if r.status_code != 403 or _code(r) != "auth.forbidden":
                failures.add(
                    method, path, f"{who} {sub}: expected 403 auth.forbidden, got {_describe(r)}"
                )
            diff = unchanged(world, before)
            if diff:
                failures.add(method, path, f"{who} {sub}'s refused request changed: {diff}")
        if method == "GET" and path != "/metrics":  # /metrics is text, answered elsewhere
            r = call(world, doc, method, path, op, bearer(control, ADMIN))
            if r.status_code != 200:
                failures.add(method, path, f"{control}: {_describe(r)}")
    failures.check()


@pytest.fixture(autouse=True)
def _bulk_job(world: World) -> None:
    """A bulk refund job of Bob's order, started and never run (no worker here), so the walk's
    admin reads it: the world of the other modules has none (their workers would run it)."""
    started = start_or_dry_run(
        world.engine,
        actor=Actor("admin", ADMIN),
        selector={"order_ids": [BOB_ORDER]},
        reason="quality_issue",
        policy=None,
        base_policy=world.app.state.ctx.desk.policy,
        rate=0,
        dry=False,
        now=NOW,
    )
    assert isinstance(started, JobStart)
    world.bulk_job = started.job.id


def test_staff_only_refuses_customers_and_merchants(world: World) -> None:
    _forbidden_to(
        world,
        "staff_only",
        (("customer", ALICE), ("customer", BOB), ("merchant", M1)),
        control="admin",
    )


def test_admin_only_refuses_every_other_role_and_answers_the_admin(world: World) -> None:
    """The shop's back end alone (webhook endpoints): agents too get 403."""
    _forbidden_to(
        world,
        "admin_only",
        (("customer", ALICE), ("merchant", M1), ("agent", AGENT)),
        control="admin",
    )


# -- no token ----------------------------------------------------------------------------------


def test_every_non_public_operation_needs_a_token(world: World) -> None:
    doc = world.app.openapi()
    failures = Failures()
    for method, path, op in operations(doc):
        if EXPECTED.get((method, path)) in ("public", "webhook_signed", None):
            continue
        before = db_snapshot(world.engine)
        for headers in ({}, {"Authorization": "Bearer rf1.forged.token"}):
            r = call(world, doc, method, path, op, headers)
            if r.status_code != 401 or _code(r) != "auth.unauthorized":
                failures.add(
                    method,
                    path,
                    f"{headers or 'no token'}: expected 401 auth.unauthorized, got {_describe(r)}",
                )
        expired = bearer("customer", ALICE, now=NOW - timedelta(days=31))
        r = call(world, doc, method, path, op, expired)
        if r.status_code != 401 or _code(r) != "auth.token_expired":
            failures.add(method, path, f"expired token: expected 401, got {_describe(r)}")
        diff = unchanged(world, before)
        if diff:
            failures.add(method, path, f"an unauthenticated request changed the database: {diff}")
    failures.check()


def test_public_operations_answer_without_a_token(world: World) -> None:
    doc, ops = _ops(world, "public")
    failures = Failures()
    for method, path, op in ops:
        r = call(world, doc, method, path, op, {})
        if r.status_code != 200:
            failures.add(method, path, f"without a token: {_describe(r)}")
    failures.check()


# -- self ----------------------------------------------------------------------------------------


def test_self_operations_show_bob_nothing_of_alice(world: World) -> None:
    doc, ops = _ops(world, "self")
    assert ops, "no self operation in the document"
    failures = Failures()
    markers = world.alice_markers()
    for method, path, op in ops:
        r = call(world, doc, method, path, op, bearer("customer", BOB))
        if r.status_code >= 300:
            failures.add(method, path, f"Bob on his own data: {_describe(r)}")
            continue
        leaked = [m for m in markers if m in r.text]
        if leaked:
            failures.add(method, path, f"Bob's answer contains Alice's {leaked}")
    failures.check()


def test_bob_sees_his_own_coupon(world: World) -> None:
    if ("GET", "/v1/me/coupons") not in {(m, p) for m, p, _ in operations(world.app.openapi())}:
        pytest.skip("GET /v1/me/coupons is not there yet")
    r = world.client.get("/v1/me/coupons", headers=bearer("customer", BOB))
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["items"]] == [BOB_COUPON]


# -- webhooks ----------------------------------------------------------------------------------


def test_webhooks_refuse_unsigned_bodies_and_change_nothing(world: World) -> None:
    _, ops = _ops(world, "webhook_signed")
    failures = Failures()
    for method, path, _op in ops:
        before = db_snapshot(world.engine)
        for body in (
            {"type": "refund.succeeded", "refund_id": "r-1", "event_id": "e-1"},
            {"tracking_number": "SF1", "status": "delivered", "event_id": "e-2"},
        ):
            for headers in ({}, {"X-Refundry-Signature": "t=1,v1=00"}):
                r = world.client.request(
                    method, path, json=body, headers={**headers, **bearer("agent", AGENT)}
                )
                if not 400 <= r.status_code < 500:
                    failures.add(method, path, f"unsigned body: expected 4xx, got {_describe(r)}")
        diff = unchanged(world, before)
        if diff:
            failures.add(method, path, f"an unsigned webhook changed the database: {diff}")
    failures.check()


# -- merchants: their own lines only ---------------------------------------------------------


def _merchant_reads(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    doc = world.app.openapi()
    return [
        (m, p, op)
        for m, p, op in operations(doc)
        if m == "GET"
        and (
            "{order_id}" in p
            or "{case_id}" in p
            or "{refund_id}" in p
            or p in ("/v1/cases", "/v1/refunds")
        )
    ]


def test_merchant_reaches_only_its_own_lines(world: World) -> None:
    """m-1 reads Alice's mixed order and case (lines of m-1 and m-2): never m-2's line; m-2
    never m-1's."""
    doc = world.app.openapi()
    failures = Failures()
    for method, path, op in _merchant_reads(world):
        for merchant, forbidden in ((M1, M2_MARKERS), (M2, [LINE_ALICE_M1, LINE_ALICE_ONLY_M1])):
            r = call(world, doc, method, path, op, bearer("merchant", merchant))
            if r.status_code not in (200, 403, 404):
                failures.add(method, path, f"{merchant}: {_describe(r)}")
                continue
            leaked = [m for m in forbidden if m in r.text]
            if leaked:
                failures.add(
                    method,
                    path,
                    f"merchant {merchant} sees another merchant's line: {leaked} in {_describe(r)}",
                )
    failures.check()


def test_merchant_reads_a_case_and_order_of_its_own_lines(world: World) -> None:
    found = {(m, p) for m, p, _ in operations(world.app.openapi())}
    checked = 0
    if ("GET", "/v1/cases/{case_id}") in found:
        r = world.client.get(f"/v1/cases/{world.case_alice_m1}", headers=bearer("merchant", M1))
        assert r.status_code == 200, r.text
        assert LINE_ALICE_ONLY_M1 in r.text
        r = world.client.get(f"/v1/cases/{world.case_alice_m1}", headers=bearer("merchant", M2))
        assert (r.status_code, _code(r)) == (404, "case.not_found"), r.text
        checked += 1
    if ("GET", "/v1/orders/{order_id}") in found:
        r = world.client.get(f"/v1/orders/{ALICE_MIXED}", headers=bearer("merchant", M1))
        assert r.status_code == 200, r.text
        assert [ln["line_id"] for ln in r.json()["lines"]] == [LINE_ALICE_M1]
        assert r.json()["tenders"] == []
        # the mixed case's total would tell m-2's amount: a merchant sees no total there
        assert [c["amount"] for c in r.json()["cases"]] == [None]
        mixed = world.client.get(
            f"/v1/cases/{world.case_alice_mixed}", headers=bearer("merchant", M1)
        )
        assert (mixed.status_code, mixed.json()["amount"]) == (200, None)
        agent = world.client.get(
            f"/v1/cases/{world.case_alice_mixed}", headers=bearer("agent", "li")
        )
        assert agent.json()["amount"]["amount"] > 0
        assert agent.json()["amount"]["currency"] == "CNY"
        r = world.client.get(f"/v1/orders/{ALICE_M1}", headers=bearer("merchant", M2))
        assert (r.status_code, _code(r)) == (404, "order.not_found"), r.text
        checked += 1
    if not checked:
        pytest.skip("no order or case read yet")


def test_staff_reach_alice_objects(world: World) -> None:
    """Agents and admins are not locked out by the ownership checks."""
    doc = world.app.openapi()
    failures = Failures()
    for method, path, op in _merchant_reads(world):
        for who, sub in (("agent", AGENT), ("admin", ADMIN)):
            r = call(world, doc, method, path, op, bearer(who, sub))
            if r.status_code != 200:
                failures.add(method, path, f"{who}: {_describe(r)}")
    failures.check()


# -- the desk's acts: customers and merchants never take them ----------------------------------

DESK_ACTS = (
    "escalate",
    "note",
    "claim",
    "assign",
    "retry-refund",
    "refund-to-wallet",
    "recover-debt",
    "write-off-debt",
)


def test_the_desks_acts_refuse_the_cases_customer_and_merchants(world: World) -> None:
    """Alice (who sees her case) and m-1 (who sees its lines of the mixed case) may not take
    the desk's acts: 403, nothing changes; m-1 may escalate only a case of its own lines."""
    doc = world.app.openapi()
    failures = Failures()
    for act in DESK_ACTS:
        path = f"/v1/cases/{{case_id}}/{act}"
        op = doc["paths"][path]["post"]
        for who, sub, expected in (
            ("customer", ALICE, {"auth.forbidden"}),
            ("merchant", M1, {"auth.forbidden", "case.not_your_lines"}),
        ):
            before = db_snapshot(world.engine)
            r = call(world, doc, "POST", path, op, bearer(who, sub))
            if r.status_code != 403 or _code(r) not in expected:
                failures.add("POST", path, f"{who} {sub}: expected 403, got {_describe(r)}")
            diff = unchanged(world, before)
            if diff:
                failures.add("POST", path, f"{who} {sub}'s refused request changed: {diff}")
    failures.check()
    r = world.client.post(
        f"/v1/cases/{world.case_alice_m1}/escalate",
        headers=bearer("merchant", M1),
        json={"comment": "cannot tell"},
    )
    assert (r.status_code, r.json()["state"]) == (200, "needs_manual_review"), r.text


def test_every_case_action_and_queue_suggestion_is_an_endpoint(tmp_path: Path) -> None:
    """What ``allowed_actions`` and the agent queue's ``suggested_actions`` may name is each one
    POST /v1/cases/{case_id}/<action> (``_`` written ``-``), classified above."""
    from typing import get_args

    from refundry.services.access import CaseAction
    from refundry.services.cases import queue

    found = {(m, p) for m, p, _ in operations(_doc_without_db(tmp_path))}
    named = set(get_args(CaseAction))
    suggested = {a for actions in queue._SUGGESTED.values() for a in actions}
    assert suggested | set(queue._SUGGESTED_FOR_DEBT) <= named
    missing = sorted(
        a for a in named if ("POST", f"/v1/cases/{{case_id}}/{a.replace('_', '-')}") not in found
    )
    assert not missing, f"case actions without an endpoint: {missing}"
