"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``."""
import os
import sys

from config import CONFIGS
from portal import ConfigError, create_app

try:
    app = create_app(CONFIGS.get(os.environ.get("PORTAL_ENV", "development"), CONFIGS["development"]))
except ConfigError as exc:
    print(f"Configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
