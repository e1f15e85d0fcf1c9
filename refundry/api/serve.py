"""Running the API: ``refundry serve`` (uvicorn) and ``refundry token`` (bearer tokens).

``serve`` runs uvicorn on the factory ``refundry.api.serve:app_factory``, so each worker
process builds its own app and database engine from the environment (``REFUNDRY_*``, see
refundry/api/settings.py); ``--url`` is handed to the workers as ``REFUNDRY_DATABASE_URL``.
Several workers need PostgreSQL: SQLite has one writer at a time and its connections must not
cross processes, so ``--workers`` above 1 on SQLite is refused. ``--tls-cert``/``--tls-key``
serve HTTPS directly (PEM files); behind a TLS-terminating proxy leave them out.

``token`` prints a token signed with ``REFUNDRY_SECRET`` (the secret the server reads), for a
shop's back end to hand to its logged-in customers, or for staff and Prometheus.

    python -m refundry.api.serve --port 8000    # the same as `refundry serve`
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI

from refundry.api.app import create_app
from refundry.api.auth import ROLES, issue_token
from refundry.api.settings import Settings
from refundry.domain.reader import ID_LENGTH, text_problem
from refundry.store.engine import ENV as DATABASE_ENV
from refundry.store.engine import database_url

__all__ = ["app_factory", "serve_command", "token_command"]

EXIT_INPUT = 2
DEFAULT_SECRET = "refundry-development-secret"  # Settings.from_env's default


def app_factory() -> FastAPI:
    """What each uvicorn worker calls: the app over the environment's settings."""
    return create_app(Settings.from_env())


def _fail(message: str) -> None:
    typer.echo(f"refundry: {message}", err=True)
    raise typer.Exit(EXIT_INPUT)


def token_command(
    role: Annotated[str, typer.Argument(help=f"One of: {', '.join(ROLES)}.")],
    subject: Annotated[
        str, typer.Argument(help="Customer or merchant id, or the agent's / admin's name.")
    ],
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days until it expires.")] = 30,
) -> None:
    """Print a bearer token signed with REFUNDRY_SECRET."""
    if role not in ROLES:
        _fail(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not subject.strip():
        _fail("subject must not be empty")
    problem = text_problem(subject, max_length=ID_LENGTH)
    if problem is not None:
        _fail(f"subject {problem}")
    secret = os.environ.get("REFUNDRY_SECRET")
    if not secret:
        typer.echo(
            "refundry: REFUNDRY_SECRET is not set: signing with the development secret",
            err=True,
        )
    token = issue_token(
        (secret or DEFAULT_SECRET).encode(),
        role=role,
        subject=subject,
        now=datetime.now(UTC),
        ttl=timedelta(days=days),
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
) -> None:
    """Serve the HTTP API with uvicorn."""
    if url:
        os.environ[DATABASE_ENV] = url
    chosen = database_url(url)
    if workers > 1 and chosen.startswith("sqlite"):
        _fail(
            f"--workers {workers} needs PostgreSQL: SQLite allows one writer at a time and its "
            "connections cannot be shared across processes; use --workers 1, or --url "
            "postgresql://…"
        )
    if (tls_cert is None) != (tls_key is None):
        _fail("--tls-cert and --tls-key go together")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            _fail(f"{path}: no such file")
    import uvicorn

    uvicorn.run(
        "refundry.api.serve:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        proxy_headers=True,
    )


if __name__ == "__main__":
    typer.run(serve_command)
