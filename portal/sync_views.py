"""Finance & Reports → AiAccount Sync: the blogger's pages.

Four cards (one per sync type) with Sync, Preview, Download xlsx and a status pill. Every view
works on ``current_blogger()`` only; runs are read through ``syncs`` (``get_run_for_blogger`` is
the guarded loader for a single run). Without JavaScript every button is a plain form submit;
with htmx the same views answer with the partial the full page includes.
"""
from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user

from . import syncs
from .aiaccount import CATALOG, COLUMNS, AiAccountError, InvoiceLine, read_xlsx, write_xlsx
from .aiaccount.xlsx import column_types
from .auth import blogger_required, current_blogger
from .batches import Batch, build_batch
from .connections import error_texts, master_data
from .documents import Mapping, Tally
from .forms import DateRangeForm
from .models import SYNC_TYPES, Blogger, SyncRun
from .pagination import page_number
from .preflight import preflight
from .syncs import TYPE_LABELS
from .timeutil import myt_today

bp = Blueprint("sync", __name__, url_prefix="/finance/aiaccount-sync")

# An unknown type never reaches a view: the URL converter answers 404.
TYPE = "any(" + ", ".join(SYNC_TYPES) + "):sync_type"
PREVIEW_LINES = 10
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# What each card pushes (the product page's "4 Endpoints" table).
PURPOSES = {
    "pos_invoice": _l("POS transactions → sales invoices"),
    "pos_receipt": _l("Paid POS transactions → receipt entries into bank"),
    "kol_bill": _l("Commission you owe your KOLs → payable bills (multi-KOL mode)"),
    "kol_payment": _l("Paid KOL commissions → payment records"),
}
TRIGGER_LABELS = {
    "user": _l("Sync button"),
    "auto_push": _l("Auto-push"),
    "cli": _l("CLI"),
    "reconcile": _l("Reconcile"),
}


def skipped_label(sync_type: str, count: int) -> str:
    if sync_type.startswith("pos_"):
        return ngettext("%(num)d transaction skipped:", "%(num)d transactions skipped:", count)
    return ngettext("%(num)d settlement skipped:", "%(num)d settlements skipped:", count)


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"type_labels": TYPE_LABELS, "purposes": PURPOSES, "triggers": TRIGGER_LABELS,
            "skipped_label": skipped_label, "today": myt_today()}


# --- what a finished run says ---------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A run's error, skipped rows and AiAccount links, ready for the pill and the run page."""

    reason: str = ""  # short, in the user's language
    fix: str = ""
    message: str = ""  # AiAccount's own words (shown with the details)
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    settings_url: str | None = None
    history_url: str | None = None
    problems: list[dict[str, str]] = field(default_factory=list)
    problem_count: int = 0

    @property
    def full_text(self) -> str:
        """Reason, AiAccount's message and fix in one line (the pill's hover text)."""
        parts = [self.reason, self.message, self.fix]
        return " — ".join(part for part in parts if part)


def outcome(run: SyncRun | None, blogger: Blogger) -> Outcome:
    """Read ``run.error_detail`` back. The credential (one more query) is touched only when a link
    into the company's AiAccount is needed: a failure, or a push without its own import link."""
    if run is None or run.is_active:
        return Outcome()
    detail = json.loads(run.error_detail) if run.error_detail else {}
    needs_company = run.status == "failed" or (run.status == "succeeded" and not run.import_url)
    company = master_data(blogger.credential) if needs_company else None
    company_history = company.import_history_url if company else None
    if run.status != "failed":
        return Outcome(history_url=run.import_url or company_history,
                       problems=detail.get("problems", []), problem_count=detail.get("problem_count", 0))
    error = _stored_error(run, detail)
    if error is None:  # a code this portal does not know: the texts the job stored
        return Outcome(reason=run.error_message or _("The sync failed."), fix=run.error_hint or "",
                       history_url=run.import_url or company_history)
    reason, fix = error_texts(error)
    details = error.details if isinstance(error.details, list) else []
    return Outcome(
        reason=reason, fix=fix, message=error.message, row_errors=[d for d in details if isinstance(d, dict)][:10],
        settings_url=_company_url(company_history, error.settings_path),
        history_url=run.import_url or company_history,
    )


def _stored_error(run: SyncRun, detail: dict[str, Any]) -> AiAccountError | None:
    """The typed error the job stored; runs failed outside a push carry only their code."""
    if "code" in detail:
        return AiAccountError.from_dict(detail)
    if run.error_code in CATALOG:
        return AiAccountError.make(run.error_code)
    return None


def _company_url(history_url: str | None, path: str | None) -> str | None:
    """A page of the company's AiAccount backend, next to its Import History."""
    if not history_url or not path:
        return None
    return f"{history_url.rstrip('/').removesuffix('/imports')}/{path}"


# --- the page -------------------------------------------------------------------------------


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _range_form() -> DateRangeForm:
    """The dates of a request: the page's form on POST, ``?start=&end=`` on GET."""
    if request.method == "GET":
        return DateRangeForm(request.args, meta={"csrf": False})
    return DateRangeForm()


def _page(blogger: Blogger, form: DateRangeForm, preview: Preview | None = None) -> str:
    runs = syncs.latest_runs(blogger.id)
    return render_template(
        "sync/index.html", blogger=blogger, form=form, preview=preview, sync_types=SYNC_TYPES,
        runs=runs, outcomes={t: outcome(runs.get(t), blogger) for t in SYNC_TYPES},
    )


def _invalid_range(blogger: Blogger, form: DateRangeForm):
    """Inline errors under the dates: the date block alone for htmx, else the whole page."""
    if _is_htmx():
        return (render_template("sync/_range.html", form=form), 422,
                {"HX-Retarget": "#sync-range", "HX-Reswap": "outerHTML"})
    return _page(blogger, form), 422


@bp.route("/", methods=["GET", "POST"])
@blogger_required
def index():
    blogger = current_blogger()
    if request.method == "POST":  # Enter in a date field: check the dates, then show the page for them
        form = DateRangeForm()
        if not form.validate():
            return _invalid_range(blogger, form)
        return redirect(url_for("sync.index", start=form.start.data, end=form.end.data), 303)
    start, end = DateRangeForm.default_range()
    form = DateRangeForm(formdata=request.args or None, data={"start": start, "end": end})
    return _page(blogger, form)


@bp.post(f"/<{TYPE}>/sync")
@blogger_required
def sync(sync_type: str):
    blogger = current_blogger()
    form = DateRangeForm()
    if form.validate():
        try:
            run, created = syncs.request_sync(blogger, sync_type, form.start.data, form.end.data,
                                              trigger="user", user=current_user)
        except syncs.SyncRequestError as error:
            form.form_errors.append(f"{TYPE_LABELS[sync_type]}: {error.message}")
        else:
            if _is_htmx():
                return render_template("sync/_sync_answer.html", form=form, sync_type=sync_type, run=run,
                                       info=outcome(run, blogger))
            message = (_("%(type)s: sync queued.", type=TYPE_LABELS[sync_type]) if created
                       else _("%(type)s: a sync is already under way.", type=TYPE_LABELS[sync_type]))
            flash(message, "success" if created else "info")
            return redirect(url_for("sync.index", start=form.start.data, end=form.end.data,
                                    _anchor=f"card-{sync_type}"), 303)
    return _invalid_range(blogger, form)


@bp.get(f"/<{TYPE}>/pill")
@blogger_required
def pill(sync_type: str):
    """The status pill alone: what htmx polls every 2 s while a run is queued or running."""
    blogger = current_blogger()
    run = syncs.latest_run(blogger.id, sync_type)
    return render_template("sync/_pill.html", sync_type=sync_type, run=run, info=outcome(run, blogger))


# --- preview and download: the exact documents Sync would send --------------------------------


@dataclass
class Preview:
    sync_type: str
    start: date
    end: date
    kind: str
    tally: Tally
    files: int  # xlsx files Sync would upload
    totals: dict[str, Decimal]  # per currency
    lines: list[Any]  # the first PREVIEW_LINES lines, read back from the xlsx
    snapshot_at: datetime | None  # when the master data checked against was fetched; None: not checked
    error: AiAccountError | None = None

    @property
    def columns(self) -> list[tuple[str, bool]]:
        """(header, is_number) per column."""
        kind = self.kind
        return [(name, kind_ in ("money", "qty")) for name, kind_ in zip(COLUMNS[kind], column_types(kind))]

    @property
    def error_texts(self) -> tuple[str, str]:
        return error_texts(self.error) if self.error else ("", "")


@contextmanager
def _built(blogger: Blogger, sync_type: str, start: date, end: date) -> Iterator[Batch]:
    """Build the range as the job would (same mapping, same chunking); the files are closed after."""
    mapping = Mapping.from_settings(blogger.settings) if blogger.settings else Mapping()
    batch = build_batch(sync_type, blogger.id, start, end, mapping,
                        chunk_size=current_app.config["SYNC_CHUNK_DOCUMENTS"])
    try:
        yield batch
    finally:
        batch.close()


def _line_total(line: Any) -> Decimal:
    return line.line_amount + line.tax_amount if isinstance(line, InvoiceLine) else line.amount


def build_preview(blogger: Blogger, sync_type: str, start: date, end: date) -> Preview:
    """A dry run in the web process: build, read the files back, pre-flight against the stored
    master-data snapshot. Nothing is pushed and the key is never decrypted."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    lines: list[Any] = []
    with _built(blogger, sync_type, start, end) as batch:
        for chunk in batch.chunks:
            for line in read_xlsx(batch.kind, chunk.data()):
                totals[line.currency] += _line_total(line)
                if len(lines) < PREVIEW_LINES:
                    lines.append(line)
    company = master_data(blogger.credential)
    preview = Preview(sync_type, start, end, batch.kind, batch.tally, len(batch.chunks),
                      dict(sorted(totals.items())), lines,
                      snapshot_at=blogger.credential.master_data_at if company is not None else None)
    if company is not None:
        try:
            preflight(batch.tally, company)
        except AiAccountError as error:
            preview.error = error
    return preview


@bp.route(f"/<{TYPE}>/preview", methods=["GET", "POST"])
@blogger_required
def preview(sync_type: str):
    blogger = current_blogger()
    form = _range_form()
    if not form.validate():
        return _invalid_range(blogger, form)
    result = build_preview(blogger, sync_type, form.start.data, form.end.data)
    if _is_htmx():
        return render_template("sync/_preview_answer.html", form=form, preview=result)
    return _page(blogger, form, preview=result)


@bp.route(f"/<{TYPE}>/download", methods=["GET", "POST"])
@blogger_required
def download(sync_type: str):
    """The file Sync would send: one xlsx, or a zip of the xlsx files when the range needs several."""
    blogger = current_blogger()
    form = _range_form()
    if not form.validate():
        errors = [error for errors in form.errors.values() for error in errors]
        abort(400, description=" ".join(str(error) for error in errors))
    start, end = form.start.data, form.end.data
    with _built(blogger, sync_type, start, end) as batch:
        name = f"aiaccount-{batch.kind}-{start.isoformat()}-{end.isoformat()}"
        if len(batch.chunks) > 1:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for chunk in batch.chunks:
                    archive.writestr(f"{name}-part{chunk.index + 1}.xlsx", chunk.data())
            body, filename, mimetype = buffer.getvalue(), f"{name}.zip", "application/zip"
        elif batch.chunks:
            body, filename, mimetype = batch.chunks[0].data(), f"{name}.xlsx", XLSX_MIMETYPE
        else:  # nothing in the range: the template with its header row only
            buffer = io.BytesIO()
            write_xlsx(batch.kind, [], buffer)
            body, filename, mimetype = buffer.getvalue(), f"{name}.xlsx", XLSX_MIMETYPE
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --- runs -----------------------------------------------------------------------------------


@bp.get(f"/<{TYPE}>/runs")
@blogger_required
def runs(sync_type: str):
    blogger = current_blogger()
    page = syncs.recent_runs(blogger.id, sync_type, page=page_number())
    reasons = {run.id: outcome(run, blogger).reason for run in page.items if run.status == "failed"}
    return render_template("sync/runs.html", sync_type=sync_type, page=page, reasons=reasons)


@bp.get("/runs/<int:run_id>")
@blogger_required
def run_detail(run_id: int):
    blogger = current_blogger()
    run = syncs.get_run_for_blogger(blogger.id, run_id)
    if run is None:
        abort(404)
    return render_template("sync/run.html", run=run, info=outcome(run, blogger))
