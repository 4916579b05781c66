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
