"""Finance & Reports → AiAccount Sync → Reconcile: "is my book complete?".

For a date range, per sync type and per MYT day: NS16's source count and total (aggregated in SQL
with the filters of ``portal/sources.py``) against what was pushed and accepted — from the last
AiAccount snapshot when one is fresh (``refresh_snapshots``, an RQ job: only the worker decrypts the
key), else estimated from the sync runs that covered the day. Every mismatch is named; "Push what's
missing" records one run per type over the mismatched days and runs them in auto-push order in one
job. See docs/reconciliation.md.
"""
from __future__ import annotations

import json
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from redis.exceptions import RedisError

from .. import syncs
from ..auth import blogger_required, current_blogger
from ..autopush import ORDER
from ..forms import DateRangeForm
from ..models import AuditLog, Blogger, SyncRun
from ..syncs import TYPE_LABELS
from ..timeutil import short_stamp
from .actions import (
    push_missing,
    refresh_running,
    refresh_snapshots,
    refresh_state,
    request_fix,
    request_refresh,
)
from .engine import (
    FIXABLE,
    FROM_LABELS,
    STATUS_HELP,
    STATUS_LABELS,
    Day,
    Reconciliation,
    TypeResult,
    currencies,
    merged_fix_ranges,
    reconcile,
    reconcile_all,
)
from .exports import build_chart, money, to_csv, to_xlsx

__all__ = ["bp", "reconcile", "reconcile_all", "merged_fix_ranges", "currencies", "refresh_snapshots",
           "push_missing", "request_fix", "request_refresh", "Reconciliation", "TypeResult", "Day", "FIXABLE"]

bp = Blueprint("reconcile", __name__, url_prefix="/finance/aiaccount-sync/reconcile")


# --- views ------------------------------------------------------------------------------------


@bp.app_context_processor
def _alert_helpers() -> dict[str, Any]:
    """``open_alerts(blogger)`` for the banner partial on any page (templates/reconcile/_banner.html)."""
    from ..alerts import open_alerts

    return {"open_alerts": open_alerts}


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"type_labels": TYPE_LABELS, "status_labels": STATUS_LABELS, "status_help": STATUS_HELP,
            "from_labels": FROM_LABELS, "money": money, "order": ORDER}


class BadCurrency(ValueError):
    pass


def _currency(choices: list[str]) -> str:
    """The currency asked for (``?currency=SGD``), one of the blogger's; default the home one."""
    asked = (request.values.get("currency") or "").strip().upper()
    if not asked:
        return choices[0]
    if asked not in choices:
        raise BadCurrency(asked)
    return asked


def _dates(form_source: str) -> DateRangeForm:
    """The range from the query string (GET) or the form (POST). A GET without dates — the link
    from the sync page, ``?currency=SGD`` alone — gets the default range, as form input: the
    ``InputRequired`` validators look at the raw input, not at defaults."""
    if form_source == "args":
        args = request.args.copy()
        if "start" not in args and "end" not in args:
            start, end = DateRangeForm.default_range()
            args["start"], args["end"] = start.isoformat(), end.isoformat()
        return DateRangeForm(args, meta={"csrf": False})
    return DateRangeForm()


def _active_runs(blogger_id: int) -> dict[str, SyncRun]:
    return {t: run for t, run in syncs.latest_runs(blogger_id).items() if run.is_active}


def _status_context(blogger: Blogger, start: date, end: date) -> dict[str, Any]:
    active = _active_runs(blogger.id)
    entry = refresh_state(blogger.id)
    return {"active_runs": active, "refresh": entry, "refreshing": refresh_running(entry),
            "refresh_detail": _details(entry), "start": start, "end": end}


def _details(entry: AuditLog | None) -> dict[str, Any]:
    if entry is None or not entry.details:
        return {}
    try:
        value = json.loads(entry.details)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@bp.get("/")
@blogger_required
def index():
    blogger = current_blogger()
    form = _dates("args")
    choices = currencies(blogger.id)
    error = None
    try:
        currency = _currency(choices)
    except BadCurrency:
        currency, error = choices[0], _("Choose one of your book's currencies: %(choices)s.",
                                        choices=" / ".join(choices))
    common = {"blogger": blogger, "form": form, "currency": currency, "currencies": choices, "currency_error": error}
    if not form.validate() or error:
        return render_template("reconcile/index.html", result=None, charts={}, **common,
                               **_status_context(blogger, None, None)), 422
    start, end = form.start.data, form.end.data
    results = reconcile_all(blogger.id, start, end)  # the fix and the switch look at every currency
    result = next(r for r in results if r.currency == currency)
    others = [r for r in results if r is not result]
    charts = {t: build_chart(result.types[t], currency) for t in ORDER}
    return render_template("reconcile/index.html", result=result, charts=charts, stamp=short_stamp,
                           fix_ranges=merged_fix_ranges(results),
                           other_mismatches={r.currency: len(r.mismatched) for r in others},
                           **common, **_status_context(blogger, start, end))


@bp.get("/status")
@blogger_required
def status():
    """The progress fragment htmx polls while a fix or a refresh is under way; once everything has
    ended it asks htmx to reload the page, so the table shows the new figures."""
    blogger = current_blogger()
    form = _dates("args")
    start, end = (form.start.data, form.end.data) if form.validate() else DateRangeForm.default_range()
    context = _status_context(blogger, start, end)
    headers = {}
    if request.args.get("polling") == "1" and not context["active_runs"] and not context["refreshing"]:
        headers["HX-Refresh"] = "true"
    return render_template("reconcile/_status.html", **context), 200, headers


def _back(form: DateRangeForm):
    currency = (request.form.get("currency") or "").strip().upper()
    extra = {"currency": currency} if currency.isalpha() and len(currency) == 3 else {}
    return redirect(url_for("reconcile.index", start=form.start.data, end=form.end.data, **extra), 303)


@bp.post("/refresh")
@blogger_required
def refresh():
    blogger = current_blogger()
    form = _dates("form")
    if not form.validate():
        abort(400)
    if blogger.credential is None:
        flash(_("AiAccount is not connected — send your API key and company name to the super admin."), "error")
        return _back(form)
    try:
        started = request_refresh(blogger, form.start.data, form.end.data, user=current_user)
    except RedisError:
        flash(_("The sync queue is not reachable. Try again shortly."), "error")
        return _back(form)
    flash(_("Reading your AiAccount book…") if started else _("A refresh from AiAccount is already under way."),
          "success" if started else "info")
    return _back(form)


@bp.post("/fix")
@blogger_required
def fix():
    blogger = current_blogger()
    form = _dates("form")
    if not form.validate():
        abort(400)
    ranges = merged_fix_ranges(reconcile_all(blogger.id, form.start.data, form.end.data))
    if not ranges:
        flash(_("Nothing to push: every day that can be pushed matches."), "info")
        return _back(form)
    try:
        created, busy = request_fix(blogger, ranges, user=current_user)
    except syncs.SyncRequestError as error:
        flash(str(error.message), "error")
        return _back(form)
    if created:
        flash(ngettext("Pushing what's missing: %(num)d sync queued (%(types)s).",
                       "Pushing what's missing: %(num)d syncs queued (%(types)s).", len(created),
                       types=", ".join(f"{TYPE_LABELS[r.sync_type]} {r.start_date.isoformat()} → "
                                       f"{r.end_date.isoformat()}" for r in created)), "success")
    if busy:
        flash(_("Already under way, not queued again: %(types)s.",
                types=", ".join(str(TYPE_LABELS[t]) for t in busy)), "info")
    return _back(form)


def _download_result() -> tuple[Reconciliation, str]:
    blogger = current_blogger()
    form = _dates("args")
    try:
        currency = _currency(currencies(blogger.id))
    except BadCurrency:
        abort(400)
    if not form.validate():
        abort(400)
    start, end = form.start.data, form.end.data
    return (reconcile(blogger.id, start, end, currency),
            f"aiaccount-reconcile-{currency}-{start.isoformat()}-{end.isoformat()}")


@bp.get("/download.csv")
@blogger_required
def download_csv():
    result, name = _download_result()
    return Response(to_csv(result), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@bp.get("/download.xlsx")
@blogger_required
def download_xlsx():
    result, name = _download_result()
    return Response(to_xlsx(result),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
