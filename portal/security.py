"""Web hardening: security headers, a CSP without unsafe-inline, local-only redirects, and input
bounds at the edge (ids that fit the database, no NUL characters)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, abort, request
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "object-src 'none'"
)


# Ids are INTEGER columns (PostgreSQL: 32-bit signed); a larger id in a URL is simply not found.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:...>`` in every URL: non-negative and at most MAX_ID, else the route does not match (404),
    instead of an id the database driver cannot bind (a 500 on SQLite and PostgreSQL alike)."""

    def __init__(self, map, fixed_digits=0, min=None, max=None, signed=False):  # noqa: A002, ANN001
        super().__init__(map, fixed_digits, min, MAX_ID if max is None else max, signed)


def register_converters(app: Flask) -> None:
    """Before any blueprint adds its rules."""
    app.url_map.converters["int"] = IdConverter


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_nul():
        """No form or query value is legitimately NUL; PostgreSQL cannot even store one (a 500)."""
        pairs = [*request.args.items(multi=True), *request.form.items(multi=True)]
        if any("\x00" in name or "\x00" in value for name, value in pairs):
            abort(400, description=_("The request contains a NUL character."))

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.endpoint and (request.endpoint.startswith(("admin.", "auth.")) or request.path.startswith("/finance")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def safe_next(target: str | None, default: str) -> str:
    """Only a local path ('/...') survives; '//evil', '\\\\evil', '/\\evil', schemes and control
    characters all fall back to ``default``."""
    if not target:
        return default
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target
