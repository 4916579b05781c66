"""The test/demo control surface under /_control (registered only with --control)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulator.company import SeedError, company_from_seed, myt_today, quota_period
from simulator.context import api_error, get_faults, get_store
from simulator.faults import FAULTS, Fault
from simulator.seed import HEALTHY

bp = Blueprint("control", __name__, url_prefix="/_control")


@bp.post("/faults")
def add_fault() -> Response | dict[str, Any]:
    data = request.get_json(silent=True) or {}
    company = str(data.get("company", ""))
    if get_store().company_by_name(company) is None:
        return api_error(404, "not_found", f"no company {company!r}")
    try:
        name = str(data["fault"])
        if name not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        count = int(data.get("count", 1))
        fault = Fault(name, float(data.get("delay", 1.0)), int(data.get("retry_after", 1)))
        if count < 1 or fault.delay < 0 or fault.retry_after < 0:
            raise ValueError("count ≥ 1, delay ≥ 0, retry_after ≥ 0")
    except (KeyError, TypeError, ValueError) as exc:
        return api_error(400, "invalid_value", f"bad fault: {exc}")
    get_faults().add(company, fault, count)
    return {"ok": True}


@bp.delete("/faults")
def clear_faults() -> dict[str, Any]:
    get_faults().clear()
    return {"ok": True}


@bp.get("/documents")
def documents() -> Response | dict[str, Any]:
    store = get_store()
    company = store.company_by_name(request.args.get("company", ""))
    if company is None:
        return api_error(404, "not_found", "unknown company")
    rows = store.documents(company, request.args.get("kind") or None)
    return {"documents": [
        {"kind": r["kind"], "number": r["number"], "counterparty": r["counterparty"],
         "doc_type": r["doc_type"], "date": r["date"], "currency": r["currency"],
         "total": r["total"], "content_hash": r["content_hash"], "line_count": r["line_count"],
         "import_id": r["import_id"], "copies": r["copies"]}
        for r in rows
    ]}


@bp.post("/reset")
def reset() -> dict[str, Any]:
    store = get_store()
    with store.write():
        store.wipe_activity(quota_period(myt_today()))
    get_faults().clear()
    return {"ok": True}


@bp.post("/companies")
def put_company() -> Response | dict[str, Any]:
    try:
        company, key = company_from_seed(request.get_json(silent=True), HEALTHY)
    except SeedError as exc:
        return api_error(400, "invalid_value", str(exc))
    store = get_store()
    with store.write():
        store.put_company(company, key, quota_period(myt_today()))
    return {"ok": True, "name": company.name}


@bp.get("/requests")
def requests_log() -> dict[str, Any]:
    return {"requests": get_store().requests()}
