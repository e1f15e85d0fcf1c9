"""The one bootstrap and its settings: fail closed outside dev mode, one-line errors, key ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from refundry.api.app import create_app
from refundry.api.auth import Unauthorized, issue_token, read_token
from refundry.bootstrap import StartupError, build, check_production
from refundry.cli import app as cli
from refundry.settings import Settings, SettingsError, load_settings
from refundry.store.migrate import upgrade
from tests.api.conftest import production_env

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("REFUNDRY_") and not key.startswith("REFUNDRY_TEST"):
            monkeypatch.delenv(key)


def test_flags_win_over_environment_over_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    config = tmp_path / "refundry.toml"
    config.write_text('case_rate_limit = 5\nmax_body_bytes = 4096\ngateway = "sandbox"\n')
    monkeypatch.setenv("REFUNDRY_CASE_RATE_LIMIT", "7")
    from_file_and_env = load_settings(config=config)
    assert (from_file_and_env.case_rate_limit, from_file_and_env.max_body_bytes) == (7, 4096)
    assert from_file_and_env.gateway == "sandbox"
    assert load_settings({"case_rate_limit": 9}, config=config).case_rate_limit == 9
    monkeypatch.setenv("REFUNDRY_CONFIG", str(config))
    assert load_settings().max_body_bytes == 4096


def test_a_bad_value_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("REFUNDRY_CASE_RATE_LIMIT", "ten")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert err.value.field == "case_rate_limit"
    assert err.value.message.startswith("case_rate_limit (REFUNDRY_CASE_RATE_LIMIT): ")
    assert "'ten'" in err.value.message


@pytest.mark.parametrize("command", [["serve"], ["worker", "--once"], ["token", "agent", "li"]])
def test_cli_commands_exit_2_with_one_line_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("REFUNDRY_CASE_RATE_LIMIT", "ten")
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("refundry: case_rate_limit (REFUNDRY_CASE_RATE_LIMIT):")


def test_outside_dev_mode_every_missing_secret_and_adapter_is_listed() -> None:
    with pytest.raises(StartupError) as err:
        check_production(Settings())
    message = err.value.message
    for part in (
        "secret (REFUNDRY_SECRET) is not set",
        "gateway_webhook_secret (REFUNDRY_GATEWAY_WEBHOOK_SECRET) is not set",
        "carrier_webhook_secret (REFUNDRY_CARRIER_WEBHOOK_SECRET) is not set",
        "gateway (REFUNDRY_GATEWAY), carrier (REFUNDRY_CARRIER), sms (REFUNDRY_SMS), "
        "email (REFUNDRY_EMAIL), events (REFUNDRY_EVENTS)",
    ):
        assert part in message
    assert message.endswith("(or pass --dev)")


def test_the_public_development_secret_and_shared_secrets_are_refused() -> None:
    env = {k.removeprefix("REFUNDRY_").lower(): v for k, v in production_env("s3cret").items()}
    check_production(Settings(**env))  # the complete production settings pass
    with pytest.raises(StartupError, match="REFUNDRY_SECRET"):
        check_production(Settings(**{**env, "secret": "refundry-development-secret"}))
    shared = {**env, "carrier_webhook_secret": env["gateway_webhook_secret"]}
    with pytest.raises(StartupError, match="must all differ"):
        check_production(Settings(**shared))


def test_passkey_origins_outside_dev_mode_are_https_or_localhost() -> None:
    env = {k.removeprefix("REFUNDRY_").lower(): v for k, v in production_env("s3cret").items()}
    check_production(
        Settings(**env, webauthn_origins=["https://shop.example", "http://localhost:8000"])
    )
    with pytest.raises(StartupError, match="webauthn_origins must be https"):
        check_production(Settings(**env, webauthn_origins=["http://shop.example"]))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REFUNDRY_WEBAUTHN_RP_ID", "https://shop.example"),
        ("REFUNDRY_WEBAUTHN_RP_ID", "shop.example:443"),
        ("REFUNDRY_WEBAUTHN_ORIGINS", '["shop.example"]'),
        ("REFUNDRY_WEBAUTHN_ORIGINS", '["https://shop.example/refunds"]'),
        ("REFUNDRY_WEBAUTHN_ORIGINS", "[]"),
    ],
)
def test_a_relying_party_that_is_not_one_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert err.value.message.startswith(f"{name.removeprefix('REFUNDRY_').lower()} ({name}): ")


def test_a_real_adapter_needs_its_credentials_even_in_dev_mode() -> None:
    settings = Settings(dev=True, gateway="http", gateway_url="https://pay.example", email="smtp")
    with pytest.raises(StartupError) as err:
        check_production(settings)
    assert "gateway = 'http' needs gateway_api_key (REFUNDRY_GATEWAY_API_KEY)" in err.value.message
    assert "email = 'smtp' needs smtp_host (REFUNDRY_SMTP_HOST), smtp_sender" in err.value.message


def test_serve_refuses_to_start_outside_dev_mode_and_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    result = CliRunner().invoke(cli, ["serve", "--url", url])
    assert result.exit_code == 2
    assert "refusing to start outside dev mode" in result.stderr
    assert "REFUNDRY_SECRET" in result.stderr and "REFUNDRY_EVENTS" in result.stderr
    worker = CliRunner().invoke(cli, ["worker", "--once", "--url", url])
    assert worker.exit_code == 2 and "refusing to start outside dev mode" in worker.stderr
    token = CliRunner().invoke(cli, ["token", "admin", "x"])
    assert token.exit_code == 2 and "REFUNDRY_SECRET" in token.stderr


def test_serve_refuses_a_database_that_was_never_migrated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    for key, value in production_env("s3cret").items():
        monkeypatch.setenv(key, value)
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    result = CliRunner().invoke(cli, ["serve", "--url", url])
    assert result.exit_code == 2
    assert "was never migrated" in result.stderr and "refundry db upgrade" in result.stderr
    with pytest.raises(StartupError, match="refundry db upgrade"):
        build(Settings(dev=True, database_url=url))


def test_dev_mode_says_so_and_runs_on_sandboxes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDRY_")}
    env["REFUNDRY_DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, "-m", "refundry", "worker", "--once", "--dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "dev mode" in line]
    assert said == [
        '{"event": "dev mode: sandboxes and development secrets allowed; never in production", '
        f'"level": "warning", "timestamp": "{json.loads(said[0])["timestamp"]}"}}',
        "refundry: dev mode: sandboxes and a development secret are allowed",
    ]
    runtime = build(Settings(dev=True, database_url=url))
    assert runtime.sandboxes == ("gateway", "carrier", "sms", "email", "events")


def test_tokens_carry_a_key_id_and_a_rotated_secret_still_verifies_its_tokens() -> None:
    old = issue_token(b"old-secret", role="agent", subject="li", now=NOW, key_id="k1")
    settings = Settings(
        secret="new-secret", token_key_id="k2", previous_secrets={"k1": "old-secret"}
    )
    keys = settings.token_secrets()
    assert read_token(keys, old, now=NOW, current="k2").tag == "agent:li"
    new = issue_token(settings.signing_secret(), role="agent", subject="li", now=NOW, key_id="k2")
    assert read_token(keys, new, now=NOW, current="k2").tag == "agent:li"
    retired = Settings(secret="new-secret", token_key_id="k2").token_secrets()
    with pytest.raises(Unauthorized):
        read_token(retired, old, now=NOW, current="k2")  # k1 no longer listed: refused


def test_a_5xx_is_problem_json_with_the_request_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    app = create_app(Settings(dev=True, database_url=url))
    boom = APIRouter()

    @boom.get("/boom")
    def _boom() -> None:
        raise RuntimeError("internal detail that must not leak")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom", headers={"X-Request-Id": "shop-req-42"})
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert (body["code"], body["request_id"]) == ("server.error", "shop-req-42")
        assert r.headers["X-Request-Id"] == "shop-req-42"
        assert "internal detail" not in r.text
        ok = client.get("/healthz")
        assert ok.headers["X-Request-Id"].startswith("req_")
        weird = client.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
        assert weird.headers["X-Request-Id"].startswith("req_")


def test_docs_configuration_lists_every_setting_with_its_default() -> None:
    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2].strip()
        for line in text.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = rows[name]
        if default is None:
            assert shown.startswith("none"), name
        elif isinstance(default, bool):
            assert shown == f"`{str(default).lower()}`", name
        elif isinstance(default, dict):
            assert shown == "`{}`", name
        elif isinstance(default, list):  # as TOML and the environment's JSON write it
            assert shown == f"`{json.dumps(default)}`", name
        else:
            assert shown == f"`{default}`", name


ADAPTER_CLASSES = {
    "HttpGateway",
    "SandboxGateway",
    "HttpLogistics",
    "SandboxLogistics",
    "SandboxSms",
    "SmtpEmailSender",
    "SandboxEmail",
    "RedisStreamPublisher",
    "RecordingPublisher",
    "InboxNotifier",
    "ChannelNotifier",
    "LocalPhotoStorage",
    "MemoryPhotoStorage",
}


def test_nothing_but_the_bootstrap_constructs_an_adapter() -> None:
    """Production code gets its adapters from refundry.bootstrap.build; the demo hands build
    the seeded sandboxes it drives (injection, as tests do); adapters build their own parts."""
    import ast

    root = Path(__file__).parent.parent / "refundry"
    allowed = {root / "bootstrap.py"}
    found = []
    for path in sorted(root.rglob("*.py")):
        if path in allowed or root / "adapters" in path.parents or root / "demo" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                if name in ADAPTER_CLASSES:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert found == []
