"""`refundry webhook …` on a migrated database of each backend: register (the secret printed
once), list, disable / enable, rotate, the delivery log, replay, delete; bad input is one line
naming the field, exit 2, and changes nothing."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from refundry.cli import app
from refundry.services.access import Actor
from refundry.services.shop_webhooks.endpoints import list_endpoints
from refundry.store.engine import make_engine

ADMIN = Actor("admin", "test")


def _endpoints(db_url: str) -> list[tuple[str, str]]:
    engine = make_engine(db_url)
    try:
        return [(e.id, e.status) for e in list_endpoints(engine, actor=ADMIN)]
    finally:
        engine.dispose()


def test_an_admin_manages_endpoints_from_the_command_line(db_url: str) -> None:
    runner = CliRunner()
    hook = "https://shop.example/refundry"
    added = runner.invoke(
        app,
        [
            "webhook",
            "add",
            hook,
            "--event",
            "refund.applied",
            "--event",
            "case.approved",
            "--url",
            db_url,
        ],
    )
    assert added.exit_code == 0, added.output
    endpoint_id = re.search(r"\b(we_[0-9a-f]{24})\b", added.output)[1]  # type: ignore[index]
    secret = re.search(r"secret: (whsec_\S+)", added.output)[1]  # type: ignore[index]
    listed = runner.invoke(app, ["webhook", "list", "--url", db_url])
    assert listed.output.strip() == f"{endpoint_id}  enabled  {hook}  refund.applied,case.approved"
    assert secret not in listed.output  # shown once
    off = runner.invoke(app, ["webhook", "disable", endpoint_id, "--url", db_url])
    assert off.exit_code == 0 and " disabled (disabled by admin:cli) " in off.output
    assert _endpoints(db_url) == [(endpoint_id, "disabled")]
    on = runner.invoke(app, ["webhook", "enable", endpoint_id, "--url", db_url])
    assert on.exit_code == 0 and _endpoints(db_url) == [(endpoint_id, "enabled")]
    rotated = runner.invoke(app, ["webhook", "rotate", endpoint_id, "--url", db_url])
    new = re.search(r"secret: (whsec_\S+)", rotated.output)[1]  # type: ignore[index]
    assert new != secret
    log = runner.invoke(app, ["webhook", "deliveries", endpoint_id, "--url", db_url])
    assert (log.exit_code, log.output) == (0, "")
    replayed = runner.invoke(
        app,
        [
            "webhook",
            "replay",
            endpoint_id,
            "--since",
            "2026-11-01T00:00:00Z",
            "--until",
            "2026-12-01T00:00:00Z",
            "--url",
            db_url,
        ],
    )
    assert replayed.output.strip() == f"refundry: 0 events queued to {endpoint_id}"
    gone = runner.invoke(app, ["webhook", "delete", endpoint_id, "--url", db_url])
    assert gone.exit_code == 0 and _endpoints(db_url) == []


def test_bad_input_is_one_line_naming_the_field_and_changes_nothing(db_url: str) -> None:
    runner = CliRunner()
    plain = runner.invoke(
        app, ["webhook", "add", "http://shop.example/h", "--event", "*", "--url", db_url]
    )
    assert plain.exit_code == 2
    assert plain.output.splitlines()[-1].startswith("refundry: webhook.url_invalid at url: ")
    unknown = runner.invoke(
        app,
        [
            "webhook",
            "add",
            "https://shop.example/h",
            "--event",
            "refund.teleported",
            "--url",
            db_url,
        ],
    )
    assert unknown.exit_code == 2
    assert unknown.output.splitlines()[-1] == (
        "refundry: webhook.event_type_unknown at event_types[0]: 'refund.teleported' is not an "
        "event type (docs/webhooks.md lists them)"
    )
    late = runner.invoke(app, ["webhook", "replay", "we_x", "--since", "soon", "--url", db_url])
    assert late.exit_code == 2
    assert late.output.splitlines()[-1] == (
        "refundry: request.invalid at since: not an RFC 3339 time: 'soon'"
    )
    missing = runner.invoke(app, ["webhook", "disable", "we_nope", "--url", db_url])
    assert missing.exit_code == 2
    assert missing.output.splitlines()[-1] == (
        "refundry: webhook.endpoint_not_found: no webhook endpoint 'we_nope'"
    )
    assert _endpoints(db_url) == []
