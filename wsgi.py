"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``.

A wrong setting stops start-up with one line on stderr, ``Configuration error: <what to fix>``,
and exit status 2 (never a traceback, never a silent fallback to the demo settings).
"""
import sys


def _refuse(exc: Exception) -> None:
    print(f"Configuration error: {exc}", file=sys.stderr)
    sys.exit(2)


try:
    import config  # reads the environment; a malformed number stops here
except RuntimeError as exc:  # config.ConfigError (the module did not finish importing)
    _refuse(exc)

from portal import create_app  # noqa: E402

try:
    app = create_app(config.config_from_env())
except config.ConfigError as exc:
    _refuse(exc)
