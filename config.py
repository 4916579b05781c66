"""Settings, read from the environment.

Every setting the portal reads is listed here with its demo default; the README
documents them. ``ProductionConfig`` refuses the demo defaults for secrets.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise RuntimeError(f"Setting {name} must be a whole number, got {value!r}") from exc


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{BASE_DIR / 'instance' / 'portal.sqlite'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    RQ_QUEUE = os.environ.get("RQ_QUEUE", "aiaccount")
    AIACCOUNT_BASE_URL = os.environ.get("AIACCOUNT_BASE_URL", "http://127.0.0.1:5001")
    # Versioned AES-256-GCM keyring "v2:<base64>,v1:<base64>": the first encrypts, all decrypt.
    AIACCOUNT_MASTER_KEYS = os.environ.get("AIACCOUNT_MASTER_KEYS", "")
    # Where the demo keeps a generated master key when AIACCOUNT_MASTER_KEYS is unset.
    AIACCOUNT_MASTER_KEY_FILE = os.environ.get(
        "AIACCOUNT_MASTER_KEY_FILE", str(BASE_DIR / "instance" / "master.key")
    )
    AIACCOUNT_TIMEOUT = float(os.environ.get("AIACCOUNT_TIMEOUT", "30"))
    AIACCOUNT_CONNECT_TIMEOUT = float(os.environ.get("AIACCOUNT_CONNECT_TIMEOUT", "3.05"))
    AIACCOUNT_MAX_RETRIES = _int("AIACCOUNT_MAX_RETRIES", 3)
    # Documents per uploaded xlsx file; a larger sync is pushed in several chunks.
    SYNC_CHUNK_DOCUMENTS = _int("SYNC_CHUNK_DOCUMENTS", 5000)
    # A run whose worker stopped heart-beating for this long is marked failed.
    SYNC_STALE_SECONDS = _int("SYNC_STALE_SECONDS", 300)
    SYNC_MAX_RANGE_DAYS = 366
    AUTOPUSH_MAX_DAYS = _int("AUTOPUSH_MAX_DAYS", 31)
    LOGIN_MAX_FAILURES = _int("LOGIN_MAX_FAILURES", 5)
    LOGIN_WINDOW_SECONDS = _int("LOGIN_WINDOW_SECONDS", 900)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "Asia/Kuala_Lumpur"
    LANGUAGES = ("en", "zh")
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "translations")
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_FROM = os.environ.get("MAIL_FROM", "aiaccount-sync@ns16.test")
    TESTING = False
    PRODUCTION = False


class DevelopmentConfig(Config):
    DEBUG = False


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    RQ_QUEUE = "aiaccount-test"
    WTF_CSRF_ENABLED = False
    # Fixed test keyring (not a secret): v1 only.
    AIACCOUNT_MASTER_KEYS = "v1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    AIACCOUNT_TIMEOUT = 5
    AIACCOUNT_MAX_RETRIES = 2
    LOGIN_MAX_FAILURES = 5


class ProductionConfig(Config):
    PRODUCTION = True
    SESSION_COOKIE_SECURE = True

    @classmethod
    def check(cls) -> None:
        if cls.SECRET_KEY == Config.__dict__["SECRET_KEY"] or not os.environ.get("SECRET_KEY"):
            raise RuntimeError("SECRET_KEY must be set in production")
        if not os.environ.get("AIACCOUNT_MASTER_KEYS"):
            raise RuntimeError("AIACCOUNT_MASTER_KEYS must be set in production (see docs/security.md)")


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestConfig,
}
