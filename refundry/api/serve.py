"""Running the API: ``refundry serve`` (uvicorn) and ``refundry token`` (bearer tokens).

``serve`` checks the settings and the schema once in the parent process (a refusal is one line
and exit code 2), then runs uvicorn on the factory ``refundry.api.serve:app_factory``, so each
worker process builds its own runtime (``refundry.bootstrap``) from the same settings: the flags
given here reach the workers as their ``REFUNDRY_*`` variables. Several workers need PostgreSQL:
SQLite has one writer at a time and its connections must not cross processes, so ``--workers``
above 1 on SQLite is refused. ``--tls-cert``/``--tls-key`` serve HTTPS directly (PEM files);
behind a TLS-terminating proxy leave them out.

``token`` prints a token signed with the server's secret (``REFUNDRY_SECRET``), for a shop's
back end to hand to its logged-in customers, or for staff and Prometheus.

    python -m refundry.api.serve --port 8000    # the same as `refundry serve`
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi import FastAPI

from refundry.api.app import create_app
from refundry.api.auth import ROLES, issue_token
from refundry.bootstrap import preflight, uses_sqlite
from refundry.domain.errors import RefundryError
from refundry.domain.reader import ID_LENGTH, text_problem
from refundry.observability import configure_logging
from refundry.settings import Settings, load_settings

__all__ = [
    "ConfigOption",
    "DevOption",
    "SetOption",
    "app_factory",
    "fail",
    "serve_command",
    "settings_from_cli",
    "token_command",
]

EXIT_INPUT = 2

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="TOML file of settings (docs/configuration.md); default $REFUNDRY_CONFIG."
    ),
]
DevOption = Annotated[
    bool,
    typer.Option(
        "--dev", help="Dev mode: unnamed adapters are sandboxes, a development secret signs."
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="NAME=VALUE for any setting (docs/configuration.md); may be repeated."
    ),
]


def fail(message: str) -> None:
    typer.echo(f"refundry: {message}", err=True)
    raise typer.Exit(EXIT_INPUT)


def settings_from_cli(
    *, config: Path | None, assignments: list[str] | None, **flags: Any
) -> Settings:
    """Flags over ``--set`` over the environment over the TOML file; a bad value exits 2 with
    one line naming the setting."""
    overrides: dict[str, Any] = {}
    for item in assignments or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--set {item!r}: expected NAME=VALUE")
        overrides[name.strip().replace("-", "_")] = value
    overrides.update({k: v for k, v in flags.items() if v is not None and v is not False})
    try:
        return load_settings(overrides, config=config)
    except RefundryError as err:
        fail(err.message)
    raise AssertionError("unreachable")


def app_factory() -> FastAPI:
    """What each uvicorn worker calls: the app over the environment's settings."""
    settings = load_settings()
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, trace_ids=settings.tracing != "off"
    )
    app = create_app(settings)
    app.state.freeze_heap = True  # a serving process: see refundry/api/app.py _serving
    return app


def token_command(
    role: Annotated[str, typer.Argument(help=f"One of: {', '.join(ROLES)}.")],
    subject: Annotated[
        str, typer.Argument(help="Customer or merchant id, or the agent's / admin's name.")
    ],
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days until it expires.")] = 30,
    minutes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1440,
            help="Minutes until it expires, instead of --days: a sign-in link (docs/pages.md).",
        ),
    ] = None,
    dev: DevOption = False,
    config: ConfigOption = None,
) -> None:
    """Print a bearer token signed with the server's secret (REFUNDRY_SECRET)."""
    if role not in ROLES:
        fail(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not subject.strip():
        fail("subject must not be empty")
    problem = text_problem(subject, max_length=ID_LENGTH)
    if problem is not None:
        fail(f"subject {problem}")
    settings = settings_from_cli(config=config, assignments=None, dev=dev)
    if settings.secret is None:
        if not settings.dev:
            fail("secret (REFUNDRY_SECRET) is not set: it signs the token (or pass --dev)")
        typer.echo("refundry: dev mode: signing with the development secret", err=True)
    token = issue_token(
        settings.signing_secret(),
        role=role,
        subject=subject,
        now=datetime.now(UTC),
        ttl=timedelta(minutes=minutes) if minutes is not None else timedelta(days=days),
        key_id=settings.token_key_id,
    )
    typer.echo(token)


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    url: Annotated[
        str | None,
        typer.Option(help="Database URL; default REFUNDRY_DATABASE_URL or ./refundry.sqlite."),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate (chain) to serve HTTPS.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (more than 1 needs PostgreSQL).")
    ] = 1,
    policy: Annotated[Path | None, typer.Option(help="Policy TOML file.")] = None,
    dev: DevOption = False,
    config: ConfigOption = None,
    assignments: SetOption = None,
) -> None:
    """Serve the HTTP API with uvicorn."""
    settings = settings_from_cli(
        config=config, assignments=assignments, database_url=url, policy=policy, dev=dev
    )
    if workers > 1 and uses_sqlite(settings):
        fail(
            f"--workers {workers} needs PostgreSQL: SQLite allows one writer at a time and its "
            "connections cannot be shared across processes; use --workers 1, or --url "
            "postgresql://…"
        )
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            fail(f"{path}: no such file")
    _preflight(settings)
    _hand_to_workers(settings, config=config, assignments=assignments)
    import uvicorn

    with _shared_http_metrics(workers):
        _run(uvicorn, host=host, port=port, workers=workers, tls=(tls_cert, tls_key))


@contextmanager
def _shared_http_metrics(workers: int) -> Iterator[None]:
    """Several workers: each writes its HTTP metrics to a directory of its own run
    (prometheus-client's multiprocess mode), so /metrics answers the sum over every worker
    whichever one the scrape reaches. The directory is made new for each run and removed after
    it: the counters restart from zero, as any process's do after a restart."""
    if workers <= 1:
        yield
        return
    shared = tempfile.mkdtemp(prefix="refundry-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(shared, ignore_errors=True)


def _run(
    uvicorn: Any, *, host: str, port: int, workers: int, tls: tuple[Path | None, Path | None]
) -> None:
    tls_cert, tls_key = tls
    uvicorn.run(
        "refundry.api.serve:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        proxy_headers=True,
        log_config=None,  # refundry.observability configures logging in each worker
    )


def _preflight(settings: Settings) -> None:
    """What the workers would refuse, refused once here with one line and exit code 2."""
    try:
        preflight(settings)
    except RefundryError as err:
        fail(err.message)
    if settings.dev:
        typer.echo("refundry: dev mode: sandboxes and a development secret are allowed", err=True)


def _hand_to_workers(
    settings: Settings, *, config: Path | None, assignments: list[str] | None
) -> None:
    """The workers read the environment: put the flags there (flags win over it, as here)."""
    if config is not None:
        os.environ["REFUNDRY_CONFIG"] = str(config)
    for item in assignments or ():
        name, _, value = item.partition("=")
        os.environ[f"REFUNDRY_{name.strip().replace('-', '_').upper()}"] = value
    if settings.database_url:
        os.environ["REFUNDRY_DATABASE_URL"] = settings.database_url
    if settings.policy is not None:
        os.environ["REFUNDRY_POLICY"] = str(settings.policy)
    if settings.dev:
        os.environ["REFUNDRY_DEV"] = "true"


if __name__ == "__main__":
    typer.run(serve_command)
