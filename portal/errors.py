"""Error pages: every HTTP error renders in the portal's layout, never a traceback."""
from __future__ import annotations

import logging

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db

log = logging.getLogger(__name__)


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return _render(400, exc.description or _("The form expired or was not sent from this site."))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        # Werkzeug's stock sentence is English only; the page's own (translated) title says it.
        own = exc.description if exc.description != type(exc).description else None
        return _render(exc.code or 500, own)

    @app.errorhandler(InternalServerError)
    def _internal(exc: InternalServerError):
        db.session.rollback()
        log.error("Unhandled error on %s %s", request.method, request.path, exc_info=exc.original_exception)
        return _render(500, None)


def _render(status: int, description: str | None):
    template = "_error_fragment.html" if _is_htmx() else "error.html"
    return render_template(template, status=status, description=description), status
