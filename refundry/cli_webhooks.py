"""`refundry webhook …`: the shop's webhook endpoints from the command line (docs/webhooks.md).

The same use cases as ``/v1/webhook-endpoints`` (services/shop_webhooks), acting as the admin
``admin:cli`` (the audit log names it). Bad input prints one line naming the field, exit 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy import Engine

from refundry.api.serve import ConfigOption, DevOption, settings_from_cli
from refundry.domain.errors import RefundryError
from refundry.services.access import Actor
from refundry.services.shop_webhooks import endpoints, log
from refundry.settings import Settings

__all__ = ["webhook_app"]

webhook_app = typer.Typer(
    help="Webhooks to the shop: endpoints, delivery log, replay.", no_args_is_help=True
)

CLI_ADMIN = Actor("admin", "cli")
T = TypeVar("T")

DbOption = Annotated[
    str | None,
    typer.Option("--url", help="Database URL; default $REFUNDRY_DATABASE_URL, else sqlite."),
]
EndpointArg = Annotated[str, typer.Argument(help="The endpoint's id (we_…).")]


@contextmanager
def _store(url: str | None, config: Path | None, dev: bool) -> Iterator[tuple[Engine, Settings]]:
    from refundry.store.engine import make_engine

    settings = settings_from_cli(config=config, assignments=None, database_url=url, dev=dev or None)
    engine = make_engine(settings.database_url)
    try:
        yield engine, settings
    finally:
        engine.dispose()


def _run(call: Callable[[], T]) -> T:
    try:
        return call()
    except RefundryError as exc:
        where = f" at {exc.field}" if exc.field else ""
        typer.echo(f"refundry: {exc.code}{where}: {exc.message}", err=True)
        raise typer.Exit(2) from None


def _show(e: endpoints.Endpoint) -> str:
    why = f" ({e.disabled_reason})" if e.disabled_reason else ""
    return f"{e.id}  {e.status}{why}  {e.url}  {','.join(e.event_types)}"


@webhook_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The shop's endpoint: https:// (http:// with --dev).")],
    event: Annotated[
        list[str], typer.Option("--event", help='An event type it takes (repeat); "*": all.')
    ],
    description: Annotated[str, typer.Option(help="What the endpoint is for.")] = "",
    db: DbOption = None,
    config: ConfigOption = None,
    dev: DevOption = False,
) -> None:
    """Register an endpoint; prints its id and its secret (shown this once)."""
    with _store(db, config, dev) as (engine, settings):
        keyed = _run(
            lambda: endpoints.register_endpoint(
                engine,
                actor=CLI_ADMIN,
                url=url,
                event_types=event,
                description=description,
                now=datetime.now(UTC),
                dev=settings.dev,
            )
        )
    typer.echo(_show(keyed.endpoint))
    typer.echo(f"secret: {keyed.secret}  (shown once: give it to the shop's verifier)")


@webhook_app.command("list")
def list_(db: DbOption = None, config: ConfigOption = None) -> None:
    """Every endpoint: id, status, URL, event types."""
    with _store(db, config, False) as (engine, _):
        for e in endpoints.list_endpoints(engine, actor=CLI_ADMIN):
            typer.echo(_show(e))


@webhook_app.command("disable")
def disable(endpoint_id: EndpointArg, db: DbOption = None, config: ConfigOption = None) -> None:
    """Stop sending to the endpoint; its deliveries wait."""
    _switch(endpoint_id, db, config, enabled=False)


@webhook_app.command("enable")
def enable(endpoint_id: EndpointArg, db: DbOption = None, config: ConfigOption = None) -> None:
    """Send again: the failure count restarts, waiting deliveries are due now."""
    _switch(endpoint_id, db, config, enabled=True)


def _switch(endpoint_id: str, db: str | None, config: Path | None, *, enabled: bool) -> None:
    with _store(db, config, False) as (engine, _):
        done = _run(
            lambda: endpoints.set_enabled(
                engine,
                actor=CLI_ADMIN,
                endpoint_id=endpoint_id,
                enabled=enabled,
                now=datetime.now(UTC),
            )
        )
    typer.echo(_show(done))


@webhook_app.command("rotate")
def rotate(endpoint_id: EndpointArg, db: DbOption = None, config: ConfigOption = None) -> None:
    """A new secret (printed once); the old one also signs for webhook_secret_overlap_hours."""
    with _store(db, config, False) as (engine, settings):
        keyed = _run(
            lambda: endpoints.rotate_secret(
                engine,
                actor=CLI_ADMIN,
                endpoint_id=endpoint_id,
                now=datetime.now(UTC),
                overlap=timedelta(hours=settings.webhook_secret_overlap_hours),
            )
        )
    typer.echo(f"secret: {keyed.secret}  (shown once)")


@webhook_app.command("delete")
def delete(endpoint_id: EndpointArg, db: DbOption = None, config: ConfigOption = None) -> None:
    """Delete the endpoint: nothing more is sent to it."""
    with _store(db, config, False) as (engine, _):
        _run(
            lambda: endpoints.delete_endpoint(
                engine, actor=CLI_ADMIN, endpoint_id=endpoint_id, now=datetime.now(UTC)
            )
        )
    typer.echo(f"refundry: webhook endpoint {endpoint_id} deleted")


@webhook_app.command("deliveries")
def deliveries(
    endpoint_id: EndpointArg,
    status: Annotated[str | None, typer.Option(help="pending | succeeded | failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The delivery log, newest first: each delivery and its attempts."""
    with _store(db, config, False) as (engine, _):
        found, _more = _run(
            lambda: log.delivery_log(
                engine, actor=CLI_ADMIN, endpoint_id=endpoint_id, status=status, limit=limit
            )
        )
    for d in found:
        typer.echo(f"{d.event_id}  {d.event_type}  {d.status}  attempts={d.attempts}")
        for a in d.attempt_log:
            answer = a.status_code if a.status_code is not None else f"no answer ({a.error})"
            later = f"  next {a.next_attempt_at.isoformat()}" if a.next_attempt_at else ""
            typer.echo(f"  #{a.attempt} {a.at.isoformat()}  {answer}  {a.latency_ms} ms{later}")


@webhook_app.command("replay")
def replay(
    endpoint_id: EndpointArg,
    event: Annotated[str | None, typer.Option(help="One event id (msg_…).")] = None,
    since: Annotated[str | None, typer.Option(help="Every event from (RFC 3339).")] = None,
    until: Annotated[str | None, typer.Option(help="… to, excluded (RFC 3339).")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Send one event, or every event of a time range the endpoint takes, again."""
    start, end = _moment(since, "since"), _moment(until, "until")
    with _store(db, config, False) as (engine, _):
        queued = _run(
            lambda: log.replay(
                engine,
                actor=CLI_ADMIN,
                endpoint_id=endpoint_id,
                now=datetime.now(UTC),
                event_id=event,
                since=start,
                until=end,
            )
        )
    typer.echo(f"refundry: {queued} events queued to {endpoint_id}")


def _moment(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset; none given: UTC), or exit 2 naming the option."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(
            f"refundry: request.invalid at {name}: not an RFC 3339 time: {value!r}", err=True
        )
        raise typer.Exit(2) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
