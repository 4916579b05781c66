"""The JSON API under /api/v1 (docs/aiaccount-api.md §1–§5)."""
from __future__ import annotations

import time
from datetime import date
from typing import Any
from urllib.parse import unquote

from flask import Blueprint, Response, g, jsonify, request

from simulator.company import Company, myt_today, normalize_name, quota_period
from simulator.context import (
    RESET_ENVIRON_KEY,
    api_error,
    get_faults,
    get_store,
    history_url,
)
from simulator.posting import post_import
from simulator.validate import TEMPLATES

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PER_PAGE = 1000


@bp.before_request
def authenticate() -> Response | None:
    """Every API call names its key and company; the key is never echoed or logged."""
    key = request.headers.get("X-Api-Key", "")
    if not key:
        return api_error(401, "invalid_api_key", "the X-Api-Key header is missing")
    if any(char.isspace() for char in key):
        return api_error(401, "invalid_api_key",
                         "the API key contains whitespace (a space or line break, often from "
                         "pasting); re-enter it without whitespace")
    company = get_store().company_by_key(key)
    if company is None:
        return api_error(401, "invalid_api_key", "unknown API key")
    claimed = unquote(request.headers.get("X-Company", "")).strip()
    if not claimed:
        return api_error(403, "company_mismatch", "the X-Company header is missing")
    if normalize_name(claimed) != normalize_name(company.name):
        return api_error(403, "company_mismatch",
                         f"this API key does not belong to company {claimed!r}")
    g.company = company
    return None


@bp.get("/company")
def company_info() -> dict[str, Any]:
    company: Company = g.company
    period = quota_period(myt_today())
    master = company.to_json()
    return {
        "name": company.name,
        "home_currency": company.home_currency,
        "currencies": list(company.currencies),
        "tax_codes": master["tax_codes"],
        "accounts": master["accounts"],
        "incorporation_date": master["incorporation_date"],
        "locked_until": master["locked_until"],
        "plan": company.plan,
        "quota": {"used": get_store().quota_used(company, period),
                  "limit": company.quota_limit, "period": period},
        "permissions": {"write": company.can_write},
        "import_history_url": history_url(company),
    }


@bp.post("/imports/<kind>")
def create_import(kind: str) -> Response:
    company: Company = g.company
    if kind not in TEMPLATES:
        return api_error(404, "not_found", f"unknown import kind {kind!r}")
    if not company.can_write:
        return api_error(403, "write_permission_denied", "this API key is read-only")
    fault = get_faults().take(company.name)
    g.fault = fault.name if fault else None
    if fault and fault.name == "server_error":
        return api_error(500, "server_error", "simulated server error")
    if fault and fault.name == "rate_limit":
        return api_error(429, "rate_limited", "too many requests",
                         headers={"Retry-After": str(fault.retry_after)})
    if fault and fault.name == "reset":
        request.environ[RESET_ENVIRON_KEY] = True
        return Response(status=204)
    key = request.headers.get("Idempotency-Key", "")
    if not 1 <= len(key) <= 200:
        return api_error(400, "idempotency_key_missing",
                         "the Idempotency-Key header must hold 1 to 200 characters")
    outcome = post_import(get_store(), company, kind, key, request.get_data(cache=False))
    if fault and fault.name == "delay_after_commit":
        time.sleep(fault.delay)
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    response.headers.update(outcome.headers)
    return response


@bp.get("/imports/<import_id>")
def get_import(import_id: str) -> Response | dict[str, Any]:
    found = get_store().get_import(g.company, import_id)
    if found is None:
        return api_error(404, "import_not_found", f"no import {import_id}")
    return found


@bp.get("/documents")
def list_documents() -> Response | dict[str, Any]:
    args = request.args
    kind = args.get("kind", "")
    try:
        if kind not in TEMPLATES:
            raise ValueError(f"kind must be one of {', '.join(TEMPLATES)}")
        start = date.fromisoformat(args["from"]) if args.get("from") else None
        end = date.fromisoformat(args["to"]) if args.get("to") else None
        page = int(args.get("page", 1))
        per_page = int(args.get("per_page", 100))
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"page ≥ 1 and 1 ≤ per_page ≤ {MAX_PER_PAGE}")
    except ValueError as exc:
        return api_error(400, "invalid_value", str(exc))
    rows = get_store().documents(g.company, kind, start, end, limit=per_page + 1,
                                 offset=(page - 1) * per_page)
    return {
        "documents": [
            {"number": r["number"], "counterparty": r["counterparty"], "date": r["date"],
             "currency": r["currency"], "total": r["total"], "import_id": r["import_id"]}
            for r in rows[:per_page]
        ],
        "page": page,
        "per_page": per_page,
        "next_page": page + 1 if len(rows) > per_page else None,
    }
