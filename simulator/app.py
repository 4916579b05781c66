"""The simulator's Flask app: one SQLite connection per request, JSON errors, a request log."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from simulator import api, control, history
from simulator.company import Company, myt_today, quota_period
from simulator.context import RESET_ENVIRON_KEY, api_error, get_store, utc_now
from simulator.faults import Faults
from simulator.seed import demo_companies
from simulator.store import Store, connect

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
              413: "file_too_large"}


def create_app(
    db_path: Path,
    *,
    control_surface: bool = False,
    max_upload_mb: float = 10,
    public_url: str | None = None,
    seeds: Iterable[tuple[Company, str]] = (),
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SIMULATOR_DB=Path(db_path),
        SIMULATOR_PUBLIC_URL=public_url.rstrip("/") if public_url else None,
        MAX_CONTENT_LENGTH=int(max_upload_mb * 1024 * 1024),
    )
    app.extensions["simulator.faults"] = Faults()
    init_db(app.config["SIMULATOR_DB"], seeds)
    app.register_blueprint(api.bp)
    app.register_blueprint(history.bp)
    if control_surface:
        app.register_blueprint(control.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_log_api_request)
    app.teardown_appcontext(close_store)
    app.add_url_rule("/healthz", "healthz", lambda: {"ok": True})
    app.wsgi_app = _ResetMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def init_db(path: Path, seeds: Iterable[tuple[Company, str]]) -> None:
    """Create the schema, the demo companies that are missing, and (replacing) the seeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        store = Store(conn)
        store.create_schema()
        today = myt_today()
        with store.write():
            for company, key in demo_companies(today):
                if store.company_by_name(company.name) is None:
                    store.put_company(company, key, quota_period(today))
            for company, key in seeds:
                store.put_company(company, key, quota_period(today))
    finally:
        conn.close()


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return api_error(413, "file_too_large", f"the file is over the {limit} byte limit")
    code = HTTP_CODES.get(status, "server_error" if status >= 500 else "bad_request")
    return api_error(status, code, exc.description or exc.name)


def _log_api_request(response: Response) -> Response:
    if request.path.startswith("/api/"):
        reset = bool(request.environ.get(RESET_ENVIRON_KEY))
        get_store().log_request(
            utc_now(), request.method, request.path,
            unquote(request.headers.get("X-Company", "")) or None,
            request.headers.get("Idempotency-Key"),
            None if reset else response.status_code, g.get("fault"),
        )
    return response


def close_store(_exc: BaseException | None) -> None:
    store = g.pop("store", None)
    if store is not None:
        store.conn.close()


class _ResetMiddleware:
    """Turns a view's reset request into a dropped connection (see __main__._Handler)."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        result = self.wsgi_app(environ, start_response)
        if environ.get(RESET_ENVIRON_KEY):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise ConnectionResetError("simulated connection reset")
        return result
