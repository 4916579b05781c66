"""Request-scoped helpers shared by the blueprints: the store, URLs, JSON errors, the clock."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Response, current_app, g, jsonify, request

from simulator.company import Company
from simulator.faults import Faults
from simulator.store import Store, connect

RESET_ENVIRON_KEY = "simulator.reset"  # set by a view: drop the TCP connection, answer nothing


def get_store() -> Store:
    """This request's store; the connection is closed at teardown (app.close_store)."""
    if "store" not in g:
        g.store = Store(connect(current_app.config["SIMULATOR_DB"]))
    store: Store = g.store
    return store


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def public_base() -> str:
    return current_app.config["SIMULATOR_PUBLIC_URL"] or request.host_url.rstrip("/")


def history_url(company: Company, import_id: str | None = None) -> str:
    url = f"{public_base()}/company/{quote(company.name, safe='')}/imports"
    return f"{url}/{import_id}" if import_id else url


def api_error(status: int, code: str, message: str, details: Any = None,
              headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """The contract's error body: ``{"error": {"code", "message", "details", ...extra}}``."""
    body = {"code": code, "message": message, "details": [] if details is None else details}
    response = jsonify({"error": {**body, **extra}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def get_faults() -> Faults:
    faults: Faults = current_app.extensions["simulator.faults"]
    return faults
