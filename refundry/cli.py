"""The `refundry` command line: a thin shell over the domain and, later, the services."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from refundry.api.serve import (
    ConfigOption,
    DevOption,
    SetOption,
    serve_command,
    settings_from_cli,
    token_command,
)
from refundry.cli_webhooks import webhook_app
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


db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL; default $REFUNDRY_DATABASE_URL, else sqlite:///refundry.sqlite.",
    ),
]


@db_app.command("upgrade")
def db_upgrade(url: UrlOption = None) -> None:
    """Create or migrate the schema to the newest version (Alembic)."""
    from refundry.store.engine import database_url
    from refundry.store.migrate import upgrade

    url = _database_url(url)
    upgrade(url)
    typer.echo(f"refundry: schema up to date at {_safe(database_url(url))}")


def _database_url(url: str | None) -> str | None:
    """--url, else the settings' (environment, then $REFUNDRY_CONFIG), else the default."""
    return settings_from_cli(config=None, assignments=None, database_url=url).database_url


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="JSON lines: one order (or envelope) per line.")],
    url: UrlOption = None,
    policy: Annotated[Path | None, typer.Option(help="Policy TOML file.")] = None,
    dev: DevOption = False,
) -> None:
    """Ingest paid orders from a JSON-lines file; bad lines are reported and skipped.

    Exit status 0 when every line was ingested or already present, 1 when some lines were bad
    (the good ones are kept), 2 when the file cannot be read.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from refundry.services.orders.bulk_import import import_lines

    try:
        total = sum(1 for _ in file.open(encoding="utf-8"))
    except OSError as exc:
        _fail(f"import {file}: cannot read ({exc.strerror})")
    pol = _load_policy(policy)
    engine = _signing_engine(url, dev=dev)
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress, file.open(encoding="utf-8") as lines:
        task = progress.add_task(f"importing {file.name}", total=total)
        report = import_lines(
            engine,
            lines,
            policy=pol,
            now=datetime.now(UTC),
            on_line=lambda n: progress.update(task, completed=n),
        )
    engine.dispose()
    for bad in report.bad:
        typer.echo(f"{file}:{bad.line}: {bad.code}: {bad.message}", err=True)
    typer.echo(
        f"refundry: {report.ingested} ingested, {report.already_present} already "
        f"present, {len(report.bad)} bad"
    )
    if report.bad:
        raise typer.Exit(1)


@app.command("bulk-refund")
def bulk_refund_command(
    reason: Annotated[
        str | None,
        typer.Option(help="Why (quality_issue, merchant_breach…: SPEC §4); not with --resume."),
    ] = None,
    campaign: Annotated[str | None, typer.Option(help="Orders of this campaign.")] = None,
    sku: Annotated[
        str | None, typer.Option(help="Orders with this SKU; only its lines are refunded.")
    ] = None,
    merchant: Annotated[
        str | None, typer.Option(help="Orders with this merchant's lines; only those.")
    ] = None,
    paid_from: Annotated[
        str | None, typer.Option(help="Orders paid at or after (ISO 8601 with offset).")
    ] = None,
    paid_until: Annotated[
        str | None, typer.Option(help="Orders paid before (ISO 8601 with offset).")
    ] = None,
    order_ids: Annotated[
        Path | None, typer.Option(help="A file of order ids, one a line ('#' comments).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Policy TOML file overriding the defaults for this job.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would move; write nothing.")
    ] = False,
    resume: Annotated[
        str | None, typer.Option(help="Go on with this job (its id) where it stopped.")
    ] = None,
    rate: Annotated[
        int | None,
        typer.Option(min=0, help="Refunds per second fed toward the gateway (0: no cap)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=5000, help="Orders per transaction.")] = 200,
    report: Annotated[
        Path | None, typer.Option(help="The CSV report's path; default bulk-refund-JOB.csv.")
    ] = None,
    url: UrlOption = None,
    dev: DevOption = False,
) -> None:
    """Refund many orders as one durable job (a recall, a cancelled campaign).

    Selectors combine (every one given must hold). The job is stored with its orders: killed
    at any point, run the same command again (or --resume JOB) and it goes on where it
    stopped, refunding nothing twice. Each refusal is recorded with its code and the job goes
    on; the CSV report lists every order's outcome. Exit status 0 when the job finished (see
    the report for each order), 2 for bad input.
    """
    from refundry.services.bulk import jobs, selection

    engine = _signing_engine(url, dev=dev)
    try:
        if resume is not None:
            if reason is not None or _selected(campaign, sku, merchant, paid_from, paid_until):
                _fail("--resume JOB takes the job's own selection, reason and policy")
            job = jobs.read_job(engine, resume)
            typer.echo(f"refundry: bulk refund job {job.id}: {job.done} of {job.total} done")
        else:
            ids = _order_ids(order_ids) if order_ids is not None else None
            doc: dict[str, Any] = {
                k: v
                for k, v in (
                    ("campaign", campaign),
                    ("sku", sku),
                    ("merchant", merchant),
                    ("paid_from", paid_from),
                    ("paid_until", paid_until),
                    ("order_ids", ids),
                )
                if v is not None
            }
            if reason is None:
                _fail("--reason is required (or --resume JOB)")
            sel, why = selection.parse_selector(doc, reason=reason)
            pol = _load_policy(policy)
            if dry_run:
                _print_dry_run(engine, sel, why, pol)
                return
            started = jobs.start_job(
                engine,
                selector=sel,
                reason=why,
                policy=pol,
                rate=rate or 0,
                actor="cli",
                now=datetime.now(UTC),
            )
            job = started.job
            verb = "started" if started.created else "found (going on)"
            typer.echo(f"refundry: bulk refund job {job.id} {verb}: {job.done} of {job.total} done")
        job = _run_with_progress(engine, job, batch=batch, rate=rate)
        path = report or Path(f"bulk-refund-{job.id}.csv")
        _write_bulk_report(engine, job.id, path)
    except RefundryError as err:
        where = f" at {err.field}" if err.field else ""
        _fail(f"{err.code}{where}: {err.message}")
    finally:
        engine.dispose()
    typer.echo(
        f"refundry: job {job.id} finished: {job.refunded} refunded, {job.refused} refused, "
        f"{job.manual_review} for manual review, {job.skipped} skipped; report {path}"
    )


def _selected(*values: str | None) -> bool:
    return any(v is not None for v in values)


def _order_ids(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        _fail(f"--order-ids {path}: cannot read ({exc.strerror})")
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]


def _print_dry_run(engine: Any, sel: Any, reason: str, pol: Any) -> None:
    from refundry.render import bulk_dry_run_lines
    from refundry.services.bulk.dry_run import dry_run

    summary = dry_run(engine, selector=sel, reason=reason, policy=pol, now=datetime.now(UTC))
    typer.echo("refundry: dry run: nothing is written")
    for line in bulk_dry_run_lines(summary.as_dict()):
        typer.echo(line)


def _run_with_progress(engine: Any, job: Any, *, batch: int, rate: int | None) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from refundry.services.bulk.running import run_job

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} orders/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(f"refunding ({job.id})", total=job.total, rate="-")
        progress.update(task, completed=job.done)

        def shown(now_job: Any) -> None:
            speed = progress.tasks[0].speed
            progress.update(
                task,
                completed=now_job.done,
                rate=f"{speed:,.0f}" if speed else "-",
            )

        return run_job(
            engine,
            job.id,
            clock=lambda: datetime.now(UTC),
            batch=batch,
            rate=rate,
            on_batch=shown,
        )


def _write_bulk_report(engine: Any, job_id: str, path: Path) -> None:
    from refundry.services.bulk.report import write_report

    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            write_report(engine, job_id, out)
    except OSError as exc:
        _fail(f"--report {path}: cannot write ({exc.strerror})")


def _signing_engine(url: str | None, *, dev: bool) -> Any:
    """An engine for --url (else the settings') with the audit keys attached: outside --dev the
    settings must name ``audit_key`` (exit 2 otherwise)."""
    from refundry.bootstrap import audit_keys
    from refundry.services.audit.keys import attach_keys
    from refundry.store.engine import make_engine

    settings = settings_from_cli(config=None, assignments=None, database_url=url, dev=dev)
    try:
        keys = audit_keys(settings)
    except RefundryError as err:
        _fail(err.message)
    engine = make_engine(settings.database_url)
    attach_keys(engine, keys)
    return engine


def _load_policy(path: Path | None) -> Any:
    from refundry.domain.policy import Policy

    if path is None:
        return Policy()
    try:
        return policy_from_toml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"policy {path}: cannot read ({exc.strerror})")
    except RefundryError as err:
        _fail(f"{err.code}: {err.message}")


@audit_app.command("verify")
def audit_verify(
    url: UrlOption = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            help="N:DIGEST a checkpoint printed by an earlier run and kept outside the "
            "database: every head it sealed must still be in its chain (a cut or rolled-back "
            "tail shows). SEQ:HASH, a head printed before migration 0019, is checked against "
            "the legacy chain."
        ),
    ] = None,
    checkpoint: Annotated[
        bool,
        typer.Option(
            help="When every chain verifies, record the heads found as a checkpoint and print "
            "its anchor (--no-checkpoint: read only)."
        ),
    ] = True,
    dev: DevOption = False,
) -> None:
    """Check the audit log's signed chains; name the first entry that does not verify."""
    from refundry.services.audit.anchors import check_anchor, parse_anchor, write_checkpoint
    from refundry.services.audit.verify import ChainReport, verify_chain
    from refundry.services.uow import UnitOfWork

    wanted = None
    if anchor is not None:
        wanted = parse_anchor(anchor)
        if wanted is None:
            _fail(f"--anchor {anchor!r}: expected N:DIGEST (a number, 64 hex digits)")
    engine = _signing_engine(url, dev=dev)
    # one snapshot for the heads and the entries (docs/audit.md)
    snapshot = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**snapshot) as conn, conn.begin():
        report = verify_chain(conn)
        held = ChainReport(True, 0)
        if report.ok and wanted is not None and not _legacy_anchor_held(conn, *wanted):
            held = check_anchor(conn, *wanted)
    made = None
    if report.ok and held.ok and checkpoint:
        with UnitOfWork(engine) as uow:
            made = write_checkpoint(uow.conn, report.heads, now=datetime.now(UTC))
            uow.commit()
    engine.dispose()
    if not held.ok:
        where = f"entry {held.first_bad_seq} of chain {held.chain!r}" if held.chain else anchor
        typer.echo(
            f"refundry: audit chain BROKEN at {where}: {held.problem} (the anchor kept outside "
            "the database is not in the log)",
            err=True,
        )
        raise typer.Exit(1)
    if report.ok:
        typer.echo(
            f"refundry: audit chain verified: {report.entries} entries in {report.chains} chains"
        )
        if made is not None:
            typer.echo(f"refundry: checkpoint (keep it as the next --anchor): {made.anchor}")
        return
    typer.echo(
        f"refundry: audit chain BROKEN at {report.where}: {report.problem} "
        f"({report.entries} entries verified before it)",
        err=True,
    )
    raise typer.Exit(1)


def _legacy_anchor_held(conn: Any, seq: int, digest: str) -> bool:
    """Whether ``seq:digest`` is an entry of the legacy chain: a head printed before 0019."""
    from sqlalchemy import select

    from refundry.services.audit.chain import LEGACY_CHAIN
    from refundry.store.tables import audit_log

    c = audit_log.c
    found = conn.execute(select(c.hash).where(c.chain == LEGACY_CHAIN, c.seq == seq)).scalar()
    return bool(found == digest)


@app.command("worker")
def worker_command(
    url: UrlOption = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds to sleep when idle.")] = 1.0,
    name: Annotated[str, typer.Option(help="This worker's name in the audit log.")] = "worker",
    gateway_url: Annotated[
        str | None,
        typer.Option(help="Payment gateway REST base URL (gateway = http; needs gateway_api_key)."),
    ] = None,
    logistics_url: Annotated[
        str | None,
        typer.Option(help="Carrier REST base URL (carrier = http; needs carrier_api_key)."),
    ] = None,
    smtp: Annotated[
        str | None, typer.Option(help="SMTP server host:port (email = smtp; needs smtp_sender).")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis URL for domain events (events = redis).")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy TOML file.")] = None,
    dev: DevOption = False,
    config: ConfigOption = None,
    assignments: SetOption = None,
) -> None:
    """Run the outbox relay (gateway refunds, notifications, events, return bookings), the
    webhooks to the shop (docs/webhooks.md) and the SLA timers until stopped (Ctrl-C), or one
    round with --once. Outside --dev every adapter must be named (docs/configuration.md)."""
    from refundry.bootstrap import StartupError, build
    from refundry.observability import configure_logging
    from refundry.worker import Worker

    flags: dict[str, Any] = {"database_url": url, "policy": policy, "dev": dev}
    if gateway_url:
        flags.update(gateway="http", gateway_url=gateway_url)
    if logistics_url:
        flags.update(carrier="http", carrier_url=logistics_url)
    if smtp:
        host, _, port = smtp.partition(":")
        flags.update(email="smtp", smtp_host=host, smtp_port=port or None)
    if redis_url:
        flags.update(events="redis", redis_url=redis_url)
    settings = settings_from_cli(config=config, assignments=assignments, **flags)
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, trace_ids=settings.tracing != "off"
    )
    try:
        runtime = build(settings)
    except RefundryError as err:
        _fail(err.message if isinstance(err, StartupError) else f"{err.code}: {err.message}")
    if settings.dev:
        typer.echo("refundry: dev mode: sandboxes and a development secret are allowed", err=True)
    worker = Worker(
        desk=runtime.desk,
        relay=runtime.relay(name=name),
        clock=runtime.clock,
        name=name,
        tracer=runtime.tracer,
        hooks=runtime.hook_sender(name=name),
    )
    if once:
        sent, fired = worker.run_once()
        typer.echo(
            f"refundry: {sent} messages handled; timers: {fired.approved} approved, "
            f"{fired.closed} closed, {fired.refunded} refunded, {fired.completed} "
            f"completed; {worker.swept} expired API idempotency keys deleted; "
            f"{worker.bulk_orders} bulk refund orders settled"
        )
        return
    try:
        worker.run_forever(interval=interval)
    except KeyboardInterrupt:
        typer.echo("refundry: worker stopped")


app.command("token")(token_command)
app.command("serve")(serve_command)
app.add_typer(webhook_app, name="webhook")

metrics_app = typer.Typer(help="/metrics' business figures.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("rebuild")
def metrics_rebuild(url: UrlOption = None) -> None:
    """Set /metrics' counters again from a full scan of the store (after editing it by hand)."""
    from refundry.services.operations.metric_counters import rebuild
    from refundry.services.uow import UnitOfWork
    from refundry.store.engine import make_engine

    engine = make_engine(_database_url(url))
    with UnitOfWork(engine) as uow:
        rebuild(uow.conn)
        uow.commit()
    engine.dispose()
    typer.echo("refundry: metric counters set from a full scan of the store")


user_app = typer.Typer(help="Staff accounts: agents, merchants and admins.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    role: Annotated[str, typer.Argument(help="agent | merchant | admin.")],
    name: Annotated[str, typer.Argument(help="The name the person signs in with.")],
    merchant: Annotated[
        str | None, typer.Option(help="The merchant id a merchant account acts for.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Create a staff account that signs in at /desk/signin (argon2id-hashed password)."""
    from refundry.services.staff.accounts import add_staff
    from refundry.store.engine import make_engine

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    engine = make_engine(_database_url(url))
    try:
        add_staff(
            engine,
            role=role,
            name=name,
            password=password,
            merchant_id=merchant,
            now=datetime.now(UTC),
        )
    except RefundryError as exc:
        where = f" at {exc.field}" if exc.field else ""
        _fail(f"{exc.code}{where}: {exc.message}")
    finally:
        engine.dispose()
    typer.echo(f"refundry: {role} {name!r} can sign in at /desk/signin")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
