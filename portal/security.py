"""Web hardening: security headers, a CSP without unsafe-inline, local-only redirects."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "object-src 'none'"
)


def init_app(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.endpoint and (request.endpoint.startswith("admin.") or request.path.startswith("/finance")):
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
