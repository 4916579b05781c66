"""The HTML Import History pages (docs/aiaccount-api.md §7)."""
from __future__ import annotations

from flask import Blueprint, abort, render_template

from simulator.company import Company
from simulator.context import get_store

bp = Blueprint("history", __name__, url_prefix="/company/<company_name>")


def _company(company_name: str) -> Company:
    company = get_store().company_by_name(company_name)
    if company is None:
        abort(404, f"no company {company_name!r}")
    return company


@bp.get("/imports")
def imports(company_name: str) -> str:
    company = _company(company_name)
    return render_template("imports.html", company=company,
                           imports=get_store().list_imports(company))


@bp.get("/imports/<import_id>")
def import_detail(company_name: str, import_id: str) -> str:
    company = _company(company_name)
    store = get_store()
    found = store.get_import(company, import_id)
    if found is None:
        abort(404, f"no import {import_id}")
    return render_template("import_detail.html", company=company, imp=found,
                           documents=store.documents(company, import_id=import_id))
