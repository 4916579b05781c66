"""Command line: ``flask --app wsgi seed-demo``, ``check-services`` and the ``aiaccount`` group."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db

aiaccount_cli = AppGroup("aiaccount", help="AiAccount Sync: push, credentials, key rotation.")


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(check_services_command)
    app.cli.add_command(aiaccount_cli)


@click.command("seed-demo")
@click.option("--seed", default=16, show_default=True, help="Random seed: the same seed gives the same shop.")
@click.option("--password", default="demo1234", show_default=True, help="Password for every demo login.")
@click.option("--transactions", type=click.IntRange(min=1, max=2_000_000), default=None,
              help="Give blogger 1 exactly N POS transactions (benchmarks).")
@click.option("--days", type=click.IntRange(min=1, max=730), default=60, show_default=True,
              help="Days of history ending yesterday (MYT).")
@click.option("--no-connect", is_flag=True, help="Leave both bloggers without AiAccount credentials.")
def seed_demo_command(seed: int, password: str, transactions: int | None, days: int, no_connect: bool) -> None:
    """Wipe the database's rows and build the demo shop."""
    from .seed import seed_demo

    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    result = seed_demo(seed=seed, password=password, transactions=transactions, days=days,
                       connect=not no_connect)
    click.echo("Demo shop ready. Logins (password: %s):" % result["password"])
    for email in result["users"]:
        click.echo(f"  {email}")
    for email, count in result["transactions"].items():
        click.echo(f"  {email}: {count} POS transactions")


@click.command("check-services")
def check_services_command() -> None:
    """Check DATABASE_URL and REDIS_URL answer; one clear line per problem."""
    from .queue import check_redis_policy, redis_connection

    problems = []
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        problems.append(f"DATABASE_URL: cannot connect ({type(exc.orig or exc).__name__}); check the setting")
    try:
        conn = redis_connection()
        conn.ping()
        policy = check_redis_policy(conn)
        if policy:
            problems.append(f"REDIS_URL: {policy}")
    except RedisError:
        problems.append(f"REDIS_URL: no Redis answers at {current_app.config['REDIS_URL']}; start one or fix the setting")
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo("Database and Redis OK")


@aiaccount_cli.command("set-credential")
@click.option("--blogger", "blogger_id", type=int, required=True)
@click.option("--company", required=True, help="The AiAccount company name.")
def set_credential_command(blogger_id: int, company: str) -> None:
    """Store a blogger's API key (read from standard input, never an argument)."""
    from .credentials import clean_api_key, set_credential
    from .models import Blogger

    blogger = db.session.get(Blogger, blogger_id)
    if blogger is None:
        raise click.ClickException(f"No blogger with id {blogger_id}")
    if not company.strip():
        raise click.BadParameter("must not be empty", param_hint="--company")
    raw = sys.stdin.readline()
    key, stripped = clean_api_key(raw.rstrip("\n"))
    if not key:
        raise click.ClickException("No API key on standard input")
    set_credential(blogger, company, key, actor=None)
    db.session.commit()
    note = " (surrounding whitespace removed)" if stripped else ""
    click.echo(f"Stored the key ending ••••{key[-4:]} for blogger {blogger_id} / {company.strip()}{note}")


@aiaccount_cli.command("rotate-keys")
def rotate_keys_command() -> None:
    """Re-encrypt every credential under the newest key in AIACCOUNT_MASTER_KEYS."""
    from .credentials import rotate_keys
    from .crypto import DecryptError

    try:
        counts = rotate_keys()
    except DecryptError as exc:
        db.session.rollback()
        raise click.ClickException(f"Nothing changed: {exc}") from None
    click.echo("Rotated {rotated} of {total} credentials ({already_current} already on the newest key)".format(**counts))


def _run_json(run) -> dict:
    return {
        "run_id": run.id, "status": run.status, "type": run.sync_type,
        "start": run.start_date.isoformat(), "end": run.end_date.isoformat(),
        "rows": run.row_count, "lines": run.line_count, "created": run.created_count,
        "skipped": run.skipped_count, "changed": run.changed_count,
        "total": None if run.total_amount is None else str(run.total_amount),
        "error_code": run.error_code, "error": run.error_message, "fix": run.error_hint,
        "import_id": run.import_id,
    }


@aiaccount_cli.command("sync")
@click.option("--blogger", "blogger_id", type=int, required=True)
@click.option("--type", "sync_type", type=click.Choice(["pos_invoice", "pos_receipt", "kol_bill", "kol_payment"]),
              required=True)
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), required=True, help="YYYY-MM-DD (MYT day)")
@click.option("--end", type=click.DateTime(formats=["%Y-%m-%d"]), required=True, help="YYYY-MM-DD (MYT day)")
@click.option("--dry-run", is_flag=True, help="Build and pre-flight against AiAccount; upload nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
def sync_command(blogger_id: int, sync_type: str, start, end, dry_run: bool, as_json: bool) -> None:
    """Run one sync in this process with the same job code the worker runs."""
    import json

    from .aiaccount import AiAccountError
    from .jobs import dry_run as build_dry_run
    from .jobs import execute_run
    from .models import Blogger
    from .syncs import SyncRequestError, request_sync, validate_request

    blogger = db.session.get(Blogger, blogger_id)
    if blogger is None:
        raise click.ClickException(f"No blogger with id {blogger_id}")
    start, end = start.date(), end.date()
    try:
        if dry_run:
            validate_request(blogger, sync_type, start, end)
            try:
                result = build_dry_run(sync_type, blogger.id, start, end)
            except AiAccountError as error:
                result = {"status": "failed", "error_code": error.code, "error": error.reason_en, "fix": error.fix_en}
        else:
            run, created = request_sync(blogger, sync_type, start, end, trigger="cli", enqueue=False)
            if not created:
                raise click.ClickException(f"Run {run.id} of this type is already {run.status}; wait for it")
            execute_run(run.id)
            db.session.refresh(run)
            result = _run_json(run)
    except SyncRequestError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            if value not in (None, [], ""):
                click.echo(f"{key}: {value}")
    if result["status"] == "failed":
        sys.exit(1)


@aiaccount_cli.command("autopush")
def autopush_command() -> None:
    """Run the hourly auto-push check now: enqueue the chains of every blogger that is due."""
    from .autopush import enqueue_due

    due = enqueue_due()
    click.echo(f"Enqueued auto-push for {len(due)} blogger(s)")
    for item in due:
        click.echo(f"  blogger {item.blogger_id}: {item.start} → {item.end}")


@aiaccount_cli.command("reap")
def reap_command() -> None:
    """Fail runs whose worker died and re-enqueue runs the queue lost (rq cron does this every minute)."""
    from .syncs import reap_stale_runs

    counts = reap_stale_runs()
    click.echo(f"Marked {counts['failed']} stale run(s) failed, re-enqueued {counts['requeued']}")


@aiaccount_cli.command("alerts-digest")
def alerts_digest_command() -> None:
    """Email today's failure digest to every blogger with open alerts (once a day; needs MAIL_SERVER)."""
    from .alerts import send_daily_digest

    if not current_app.config.get("MAIL_SERVER"):
        raise click.ClickException("MAIL_SERVER is not set: no email can be sent")
    click.echo(f"Sent {send_daily_digest()} digest email(s)")
