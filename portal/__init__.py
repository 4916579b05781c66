"""AiAccount Sync portal: the app factory."""
from __future__ import annotations

import logging

from flask import Flask

from config import Config, ConfigError, ProductionConfig

__all__ = ["create_app", "ConfigError"]


def create_app(config_class: type[Config] = Config) -> Flask:
    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder="../static",
        instance_relative_config=False,
    )
    app.config.from_object(config_class)
    if issubclass(config_class, ProductionConfig):
        ProductionConfig.check(app.config)
    check_database_url(app)
    check_keyring(app)
    if app.config.get("PROXY_FIX_X_FOR"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"])  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_template_helpers(app)
    return app


def check_database_url(app: Flask) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    try:
        url = make_url(uri)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL is not a database URL (expected e.g. sqlite:///instance/portal.sqlite "
            "or postgresql+psycopg://user@host/db)"
        ) from None
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(f"DATABASE_URL: unsupported database {url.get_backend_name()!r}; use sqlite or postgresql")
    if url.get_backend_name() == "sqlite" and url.database:
        from pathlib import Path

        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def check_keyring(app: Flask) -> None:
    """A malformed AIACCOUNT_MASTER_KEYS stops start-up with one line (never at the first push)."""
    from .crypto import Keyring, KeyringError

    setting = app.config.get("AIACCOUNT_MASTER_KEYS") or ""
    if setting.strip():
        try:
            Keyring.parse(setting)
        except KeyringError as exc:
            raise ConfigError(str(exc)) from None


def register_extensions(app: Flask) -> None:
    from . import i18n
    from .extensions import babel, csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_root() / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _tune_sqlite(app)


def _tune_sqlite(app: Flask) -> None:
    from sqlalchemy import event

    from .extensions import db

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # noqa: ANN001 - DB-API objects
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


def register_blueprints(app: Flask) -> None:
    from . import admin, auth, health, reconcile, security, sync_views

    security.register_converters(app)  # bounded <int:...> ids, before any rule is added

    app.register_blueprint(auth.bp)
    app.register_blueprint(sync_views.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(reconcile.bp)
    app.register_blueprint(health.bp)


def register_errorhandlers(app: Flask) -> None:
    from . import errors, security

    errors.init_app(app)
    security.init_app(app)


def register_commands(app: Flask) -> None:
    from . import cli

    cli.init_app(app)


def register_template_helpers(app: Flask) -> None:
    from . import i18n, timeutil

    app.jinja_env.globals.update(
        short_stamp=timeutil.short_stamp,
        full_stamp=timeutil.full_stamp,
        languages=app.config["LANGUAGES"],
        current_locale=i18n.current_locale,
        problem_text=i18n.problem_text,
    )


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
