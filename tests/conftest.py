"""Fixtures: a real database (SQLite file or PostgreSQL), real Redis, the real simulator.

``TEST_DATABASE_URL`` picks the database (default: a SQLite file in a temp dir); the schema is
built once per session by the real migrations and every test starts from empty tables.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import create_engine, text

from config import TestConfig
from portal import create_app
from portal.extensions import db

pytest_plugins = ["tests.plugin_simulator", "tests.plugin_stack", "tests.plugin_browser", "tests.factories"]

REQUIRE_ALL = os.environ.get("REQUIRE_ALL") == "1"  # CI: nothing may be skipped


_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if REQUIRE_ALL and _skipped and exitstatus == 0:
        print(f"\nCI=true allows no skipped tests; skipped: {', '.join(_skipped)}")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'portal.sqlite'}"


@pytest.fixture(scope="session")
def _schema(database_url: str) -> str:
    """Build the schema once with the real migrations (what `flask db upgrade` runs)."""
    from flask_migrate import upgrade

    if database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    app = _make_app(database_url, {})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


def _make_app(database_url: str, overrides: dict) -> Flask:
    config = type("PerTestConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": database_url, **overrides})
    return create_app(config)


def _empty_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(text(f"DELETE FROM {table}"))
    db.session.commit()


@pytest.fixture
def app_overrides() -> dict:
    """Override config values for one test: parametrize or redefine this fixture."""
    return {}


@pytest.fixture
def app(_schema: str, app_overrides: dict, redis_conn: Redis) -> Iterator[Flask]:
    app = _make_app(_schema, app_overrides)
    with app.app_context():
        _empty_tables()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def app_ctx(app: Flask):
    with app.app_context():
        yield app


@pytest.fixture(scope="session")
def redis_url() -> str:
    return TestConfig.REDIS_URL


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[Redis]:
    conn = Redis.from_url(redis_url)
    try:
        conn.ping()
    except Exception as exc:  # noqa: BLE001 - any connection failure means the same here
        pytest.fail(f"Redis is required for the tests ({redis_url}): {exc}")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


class AuthActions:
    def __init__(self, client: FlaskClient):
        self._client = client

    def login(self, email: str, password: str = "pw-secret-123"):
        return self._client.post("/login", data={"email": email, "password": password})

    def logout(self):
        return self._client.post("/logout")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)
