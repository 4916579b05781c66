"""Settings, read from the environment.

Every setting the portal reads is listed here with its demo default; the README
documents them. ``ProductionConfig`` refuses the demo defaults for secrets.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
DEV_SECRET_KEY = "dev-only-not-secret"


class ConfigError(RuntimeError):
    """A setting is wrong; the message names it and says what to fix (one line, no secret)."""


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from None


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _int_list(name: str, default: list[int]) -> list[int]:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError:
        raise ConfigError(f"{name} must be whole numbers of seconds separated by commas, got {value!r}") from None
    if any(n < 0 for n in numbers):
        raise ConfigError(f"{name} must not hold negative numbers, got {value!r}")
    return numbers


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
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
    AIACCOUNT_TIMEOUT = _float("AIACCOUNT_TIMEOUT", 30.0)
    AIACCOUNT_CONNECT_TIMEOUT = _float("AIACCOUNT_CONNECT_TIMEOUT", 3.05)
    AIACCOUNT_MAX_RETRIES = _int("AIACCOUNT_MAX_RETRIES", 3)
    # Documents per uploaded xlsx file; a larger sync is pushed in several chunks.
    SYNC_CHUNK_DOCUMENTS = _int("SYNC_CHUNK_DOCUMENTS", 5000)
    # A run whose worker stopped heart-beating for this long is marked failed.
    SYNC_STALE_SECONDS = _int("SYNC_STALE_SECONDS", 300)
    # Seconds between RQ's retries of a transient failure (needs a worker with --with-scheduler).
    SYNC_RETRY_INTERVALS = _int_list("SYNC_RETRY_INTERVALS", [10, 30, 90])
    SYNC_MAX_RANGE_DAYS = 366
    AUTOPUSH_MAX_DAYS = _int("AUTOPUSH_MAX_DAYS", 31)
    LOGIN_MAX_FAILURES = _int("LOGIN_MAX_FAILURES", 5)
    LOGIN_WINDOW_SECONDS = _int("LOGIN_WINDOW_SECONDS", 900)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Off only for the plain-http demo and tests; ProductionConfig forces it on.
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # Behind a reverse proxy: how many proxies set X-Forwarded-For (login throttling counts per client IP).
    PROXY_FIX_X_FOR = _int("PROXY_FIX_X_FOR", 0)
    WTF_CSRF_TIME_LIMIT = None
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "Asia/Kuala_Lumpur"
    LANGUAGES = ("en", "zh")
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "translations")
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_FROM = os.environ.get("MAIL_FROM", "aiaccount-sync@ns16.test")
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD", "")
    # The portal's public address, for links in alert emails.
    PORTAL_URL = os.environ.get("PORTAL_URL", "http://127.0.0.1:5000")
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
    REMEMBER_COOKIE_SECURE = True

    @staticmethod
    def check(config) -> None:  # noqa: ANN001 - a flask.Config (a dict)
        """Refuse to start on the demo's secrets: one line that names the setting."""
        secret = config.get("SECRET_KEY") or ""
        if secret == DEV_SECRET_KEY or len(secret) < 16:
            raise ConfigError("SECRET_KEY must be set in production to a random value of at least 16 characters "
                              "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if not (config.get("AIACCOUNT_MASTER_KEYS") or "").strip():
            raise ConfigError("AIACCOUNT_MASTER_KEYS must be set in production (see docs/security.md)")
        if not config.get("SESSION_COOKIE_SECURE"):
            raise ConfigError("SESSION_COOKIE_SECURE must stay on in production")


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestConfig,
}


# What PORTAL_ENV may select for a running portal (TestConfig turns CSRF off: tests only).
ENVIRONMENTS = ("development", "production")


def config_from_env() -> type[Config]:
    """The config class ``PORTAL_ENV`` names; an unknown name stops start-up (never a silent dev fallback)."""
    name = os.environ.get("PORTAL_ENV", "development").strip().lower() or "development"
    if name not in ENVIRONMENTS:
        raise ConfigError(f"PORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}; got {name!r}")
    return CONFIGS[name]
