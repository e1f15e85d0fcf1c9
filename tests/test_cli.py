"""`refundry plan` as a user runs it: files in, JSON or tables out, one-line errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refundry.cli import app
from refundry.demo import worked_examples as ex

NOW = ["--now", ex.NOW]


@pytest.fixture()
def docs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "order": ex.THRESHOLD,
        "snapshot": ex.snapshot(),
        "request": ex.request("o-500-100", "Y"),
    }
    paths = {}
    for name, doc in files.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(doc), encoding="utf-8")
    return paths


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_plan_prints_canonical_json(docs: dict[str, Path]) -> None:
    code, out, _ = run("plan", docs["order"], docs["snapshot"], docs["request"], *NOW)
    assert code == 0
    plan = json.loads(out)
    assert plan["amount"]["total"] == 10000
    assert out == json.dumps(plan, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


def test_history_option_feeds_earlier_plans(docs: dict[str, Path], tmp_path: Path) -> None:
    _, first, _ = run("plan", docs["order"], docs["snapshot"], docs["request"], *NOW)
    history = tmp_path / "history.json"
    history.write_text(f"[{first}]", encoding="utf-8")
    docs["request"].write_text(json.dumps(ex.request("o-500-100", "X")), encoding="utf-8")
    code, out, _ = run(
        "plan", docs["order"], docs["snapshot"], docs["request"], *NOW, "--history", history
    )
    assert code == 0
    assert json.loads(out)["amount"]["total"] == 40000


def test_policy_file_changes_the_plan(docs: dict[str, Path], tmp_path: Path) -> None:
    docs["order"].write_text(json.dumps(ex.COUPON), encoding="utf-8")
    docs["snapshot"].write_text(json.dumps(ex.COUPON_SNAPSHOT), encoding="utf-8")
    docs["request"].write_text(json.dumps(ex.request("o-coupon", "A")), encoding="utf-8")
    policy = tmp_path / "policy.toml"
    policy.write_text('[refund]\nexpired_coupon = "forfeit"\n', encoding="utf-8")
    code, out, _ = run(
        "plan", docs["order"], docs["snapshot"], docs["request"], *NOW, "--policy", policy
    )
    assert code == 0
    assert [e["type"] for e in json.loads(out)["effects"] if "coupon" in e["type"]] == [
        "coupon_forfeit"
    ]


def test_pretty_prints_tables(docs: dict[str, Path]) -> None:
    code, out, _ = run("plan", docs["order"], docs["snapshot"], docs["request"], *NOW, "--pretty")
    assert code == 0
    assert "total to refund" in out
    assert "100.00 CNY" in out


def test_bad_json_is_one_line_error_with_position_exit_2(docs: dict[str, Path]) -> None:
    docs["order"].write_text('{"id": "o-1",\n  "lines": [}', encoding="utf-8")
    code, _, err = run("plan", docs["order"], docs["snapshot"], docs["request"], *NOW)
    assert code == 2
    assert err.count("\n") == 1
    assert "not valid JSON at line 2 column" in err


def test_invalid_order_names_the_field_exit_2(docs: dict[str, Path]) -> None:
    bad = json.loads(json.dumps(ex.THRESHOLD))
    bad["lines"][1]["unit_price"] = "200.00"
    docs["order"].write_text(json.dumps(bad), encoding="utf-8")
    code, _, err = run("plan", docs["order"], docs["snapshot"], docs["request"], *NOW)
    assert code == 2
    assert err == (
        "refundry: order.invalid at order.lines[1].unit_price: "
        "must be an integer (minor units; no decimals)\n"
    )


def test_refused_request_gives_its_code_exit_2(docs: dict[str, Path], tmp_path: Path) -> None:
    docs["request"].write_text(json.dumps(ex.request("o-500-100", "Z")), encoding="utf-8")
    code, _, err = run("plan", docs["order"], docs["snapshot"], docs["request"], *NOW)
    assert code == 2
    assert err.startswith("refundry: refund.unknown_line at request.lines[0].line_id:")


def test_console_script_runs_as_a_process(docs: dict[str, Path]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "refundry",
            "plan",
            str(docs["order"]),
            str(docs["snapshot"]),
            str(docs["request"]),
            *NOW,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "ready"
