"""The `refundry` command line: a thin shell over the domain and, later, the services."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from refundry.domain.errors import RefundryError
from refundry.domain.json_io import dumps_plan, plan_from_json
from refundry.domain.policy import policy_from_toml

app = typer.Typer(
    help="refundry: refund plans that undo everything a purchase touched.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_INPUT = 2


def _fail(message: str) -> None:
    typer.echo(f"refundry: {message}", err=True)
    raise typer.Exit(EXIT_INPUT)


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"{what} {path}: cannot read ({exc.strerror})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{what} {path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")


@app.callback()
def _root() -> None:
    """refundry: refund plans that undo everything a purchase touched."""


@app.command("plan")
def plan_command(
    order: Annotated[Path, typer.Argument(help="The paid order (JSON, docs/plan-json.md).")],
    snapshot: Annotated[Path, typer.Argument(help="The customer snapshot (JSON).")],
    request: Annotated[Path, typer.Argument(help="The refund request (JSON).")],
    policy: Annotated[
        Path | None, typer.Option(help="Policy TOML file; SPEC defaults when omitted.")
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="The time to plan at (ISO 8601 with offset); default now.")
    ] = None,
    history: Annotated[
        Path | None, typer.Option(help="JSON list of the plans applied earlier to this order.")
    ] = None,
    pretty: Annotated[
        bool, typer.Option("--pretty", help="Readable tables instead of JSON.")
    ] = False,
) -> None:
    """Compute the refund plan of a request and print it (nothing is stored or sent)."""
    policy_doc: dict[str, Any] | None = None
    try:
        if policy is not None:
            try:
                text = policy.read_text(encoding="utf-8")
            except OSError as exc:
                _fail(f"policy {policy}: cannot read ({exc.strerror})")
            policy_doc = policy_from_toml(text).as_dict()
        plan = plan_from_json(
            order=_read_json(order, "order"),
            snapshot=_read_json(snapshot, "snapshot"),
            request=_read_json(request, "request"),
            history=_read_json(history, "history") if history else [],
            policy=policy_doc,
            now=now or datetime.now(UTC).isoformat(timespec="seconds"),
        )
    except RefundryError as err:
        where = f" at {err.field}" if err.field else ""
        _fail(f"{err.code}{where}: {err.message}")
    if pretty:
        from refundry.render import print_plan

        print_plan(plan)
    else:
        sys.stdout.write(dumps_plan(plan) + "\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
