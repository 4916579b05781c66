"""RQ jobs: the only place that combines the credential (crypto), the AiAccount client and the builders.

Job functions take ids only and resolve everything inside an app context. The ``sync_runs`` row is
the single source of truth for a run's state: Redis only holds the queue.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta
from typing import Any

from flask import Flask, current_app, has_app_context
from rq import get_current_job
from sqlalchemy import or_, update

from . import audit
from .aiaccount import SYNC_TYPE_KINDS, AiAccountClient, AiAccountError
from .batches import Batch, build_batch
from .connections import build_client, remember_master_data
from .credentials import reveal
from .crypto import DecryptError
from .documents import Mapping
from .extensions import db
from .models import AiAccountCredential, SyncRun
from .preflight import preflight
from .syncs import mark_failed, record_error
from .timeutil import utcnow

log = logging.getLogger(__name__)
_worker_app: Flask | None = None


def _app() -> Flask:
    """The app for a worker process, built on first use (never at import)."""
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()
    if _worker_app is None:
        from config import config_from_env
        from portal import create_app

        _worker_app = create_app(config_from_env())
    return _worker_app


def run_sync(run_id: int) -> str:
    """The RQ job behind every Sync click, auto-push step and reconcile fix."""
    job = get_current_job()
    retries_left = (job.retries_left or 0) if job is not None else 0
    app = _app()
    with app.app_context():
        return execute_run(run_id, retries_left=retries_left)


def client_for(credential: AiAccountCredential) -> AiAccountClient:
    """A client holding the blogger's decrypted key, for one push (the caller closes it).
    The only place the plaintext key exists outside the admin's one POST."""
    try:
        api_key = reveal(credential)
    except DecryptError:
        raise AiAccountError.make("credential_unreadable") from None
    return build_client(api_key, credential.company_name)


def autopush_tick() -> int:
    """Hourly (rq cron): enqueue the auto-push chain of every blogger that is due."""
    from .autopush import enqueue_due

    with _app().app_context():
        return len(enqueue_due())


def autopush_blogger(blogger_id: int, start: str, end: str) -> str:
    """One blogger's auto-push chain: the four types in order (see portal/autopush.py)."""
    from .autopush import ChainBusy, run_chain

    job = get_current_job()
    retries_left = (job.retries_left or 0) if job is not None else 0
    with _app().app_context():
        try:
            return run_chain(blogger_id, date.fromisoformat(start), date.fromisoformat(end),
                             execute=lambda run_id: execute_run(run_id, retries_left=retries_left))
        except ChainBusy:
            if retries_left > 0:
                raise
            log.warning("auto-push for blogger %s gave up: a user's sync kept the type busy", blogger_id)
            return "busy"


def send_alert_digest() -> int:
    """Hourly (rq cron): one email per blogger per MYT day about open failures (needs MAIL_SERVER)."""
    from .alerts import send_daily_digest

    with _app().app_context():
        return send_daily_digest()


def reap_stale() -> dict[str, int]:
    """Every minute (rq cron): fail runs whose worker died, re-enqueue runs the queue lost."""
    from .syncs import reap_stale_runs

    with _app().app_context():
        return reap_stale_runs()


def dry_run(run_sync_type: str, blogger_id: int, start: date, end: date) -> dict[str, Any]:
    """Build and pre-flight against the live company, upload nothing (CLI --dry-run)."""
    from .models import Blogger

    blogger = db.session.get(Blogger, blogger_id)
    if blogger.credential is None:
        raise AiAccountError.make("not_connected")
    if blogger.settings is None:
        raise AiAccountError.make("settings_missing")
    batch = build_batch(run_sync_type, blogger_id, start, end, Mapping.from_settings(blogger.settings))
    try:
        client = client_for(blogger.credential)
        try:
            preflight(batch.tally, client.get_company())
        finally:
            client.close()
        tally = batch.tally
        return {"status": "dry_run", "documents": tally.documents, "lines": tally.lines,
                "totals": {currency: str(total) for currency, total in sorted(tally.totals.items())},
                "chunks": len(batch.chunks), "problems": [p.__dict__ for p in tally.problems]}
    finally:
        batch.close()


def execute_run(run_id: int, *, retries_left: int = 0) -> str:
    """Run one sync to its end state and return that state. Safe to call twice: a run that
    already ended is left alone, so a job RQ re-runs after it finished never pushes again."""
    if not _claim(run_id):
        run = db.session.get(SyncRun, run_id)
        return run.status if run is not None else "missing"
    run = db.session.get(SyncRun, run_id)
    started = time.perf_counter()
    batch: Batch | None = None
    heartbeat = _Heartbeat(run_id)
    try:
        batch = _build(run, heartbeat)
        if batch.tally.documents == 0:
            _finish(run, "no_data", batch, started)
            return run.status
        _push(run, batch, heartbeat)
        _finish(run, "succeeded", batch, started)
    except AiAccountError as error:
        error = _explain(error, run.sync_type)
        if error.transient and retries_left > 0:
            record_error(run, error)
            run.status = "queued"  # RQ retries it with backoff; the pill says so
            db.session.commit()
            raise
        _fail(run, error, batch, started)
    except Exception:
        db.session.rollback()
        _fail(db.session.get(SyncRun, run_id), AiAccountError.make("internal_error"), batch, started)
        raise
    finally:
        if batch is not None:
            batch.close()
    return run.status


def _claim(run_id: int) -> bool:
    """Atomically move a queued run (or a running one whose worker died) to running."""
    now = utcnow()
    stale = now - timedelta(seconds=current_app.config["SYNC_STALE_SECONDS"])
    result = db.session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id,
               or_(SyncRun.status == "queued",
                   (SyncRun.status == "running") & (SyncRun.heartbeat_at < stale)))
        .values(status="running", heartbeat_at=now, attempts=SyncRun.attempts + 1)
    )
    db.session.commit()
    return result.rowcount == 1


def _beat(run: SyncRun) -> None:
    run.heartbeat_at = utcnow()
    db.session.commit()


class _Heartbeat:
    """Proof of life for the reaper, written at most every ``SYNC_STALE_SECONDS / 10`` seconds
    (30 s by default) rather than per chunk, so a sync's SQL statement count does not grow with
    its size. While rows stream the write goes through a connection of its own: on PostgreSQL the
    session holds a server-side cursor, which committing the session would close. During the
    upload it commits the run, so the counts of the chunks AiAccount has answered are kept."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.every = current_app.config["SYNC_STALE_SECONDS"] / 10
        self.last = time.monotonic()

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.every:
            return False
        self.last = now
        return True

    def aside(self) -> None:
        if self._due():
            with db.engine.begin() as connection:
                connection.execute(update(SyncRun).where(SyncRun.id == self.run_id).values(heartbeat_at=utcnow()))

    def commit(self, run: SyncRun) -> None:
        if self._due():
            _beat(run)


def _build(run: SyncRun, heartbeat: _Heartbeat) -> Batch:
    run.started_at = run.started_at or utcnow()
    for name in ("error_code", "error_message", "error_hint", "error_detail", "import_id", "import_url"):
        setattr(run, name, None)
    # Every attempt sends every chunk (a chunk AiAccount already answered is answered again under
    # its Idempotency-Key), so the counts are those of this pass alone; an earlier attempt's
    # (a killed worker, an RQ retry) would otherwise be counted twice.
    run.created_count = run.skipped_count = run.changed_count = 0
    blogger = run.blogger
    if blogger.credential is None:
        raise AiAccountError.make("not_connected")
    if blogger.settings is None:
        raise AiAccountError.make("settings_missing")
    db.session.commit()
    batch = build_batch(run.sync_type, blogger.id, run.start_date, run.end_date,
                        Mapping.from_settings(blogger.settings), run_id=run.id,
                        chunk_size=current_app.config["SYNC_CHUNK_DOCUMENTS"],
                        on_chunk=lambda _batch: heartbeat.aside())
    tally = batch.tally
    # One currency: its total; MYR and SGD stores together: no total (a mixed sum means nothing).
    run.row_count, run.line_count, run.total_amount = tally.documents, tally.lines, tally.single_currency_total
    _beat(run)
    return batch


def _push(run: SyncRun, batch: Batch, heartbeat: _Heartbeat) -> None:
    credential = run.blogger.credential
    client = client_for(credential)
    try:
        clock = time.perf_counter()
        company = client.get_company()
        remember_master_data(credential, company)
        preflight(batch.tally, company, fresh_documents=_fresh_documents(run, batch))
        # End the transaction the master-data snapshot opened: an upload may take minutes, and on
        # SQLite an open write transaction would hold the whole database's write lock meanwhile.
        db.session.commit()
        batch.timings["preflight"] = round(time.perf_counter() - clock, 4)
        clock = time.perf_counter()
        imports = []
        for chunk in batch.chunks:
            result = client.upload(batch.kind, chunk.data(), chunk.idempotency_key)
            run.created_count += result.created
            run.skipped_count += result.skipped_duplicates
            run.changed_count += result.changed
            run.import_id, run.import_url = result.import_id, result.url
            imports.append({"import_id": result.import_id, "created": result.created,
                            "skipped": result.skipped_duplicates, "changed": result.changed,
                            "changed_documents": [d.number for d in result.changed_documents][:50]})
            heartbeat.commit(run)
        batch.timings["upload"] = round(time.perf_counter() - clock, 4)
        batch.timings["imports"] = imports  # type: ignore[assignment]
    finally:
        client.close()


def _fresh_documents(run: SyncRun, batch: Batch) -> int | None:
    """A re-push of a range that already succeeded mostly skips duplicates, which use no quota:
    leave that to AiAccount's exact count instead of failing the pre-flight."""
    earlier = db.session.query(SyncRun.id).filter(
        SyncRun.blogger_id == run.blogger_id, SyncRun.sync_type == run.sync_type,
        SyncRun.status == "succeeded", SyncRun.start_date <= run.end_date, SyncRun.end_date >= run.start_date,
    ).first()
    return 0 if earlier else None


def _explain(error: AiAccountError, sync_type: str) -> AiAccountError:
    """Give row errors that all say 'reference not found' the fix a user can act on."""
    details = error.details if isinstance(error.details, list) else []
    if error.code == "validation_failed" and details and all(
            isinstance(d, dict) and d.get("code") == "reference_not_found" for d in details):
        return AiAccountError.make("reference_missing", _REFERENCED[sync_type],
                                   details=details, http_status=error.http_status)
    return error


# What a document of each type refers to, in the words of the fix hint.
_REFERENCED = {
    "pos_invoice": "POS Sales Invoice for the dates of the original sales (refunds refer to them)",
    "pos_receipt": "POS Sales Invoice for the same dates",
    "kol_bill": "KOL Bill for the same dates",
    "kol_payment": "KOL Bill for the settlement dates",
}


def _finish(run: SyncRun, status: str, batch: Batch, started: float) -> None:
    run.status = status
    run.finished_at = utcnow()
    timings = dict(batch.timings, total=round(time.perf_counter() - started, 4))
    run.phase_timings = json.dumps(timings)
    problems = batch.tally.problems
    if problems:
        run.error_detail = json.dumps({"problems": [p.__dict__ for p in problems[:200]],
                                       "problem_count": len(problems)}, ensure_ascii=False)
    _audit(run, {"problems": len(problems)})
    db.session.commit()
    log.info("sync run %s %s: %s documents, %s created, %s skipped, %s changed", run.id, status,
             run.row_count, run.created_count, run.skipped_count, run.changed_count)


def _fail(run: SyncRun | None, error: AiAccountError, batch: Batch | None, started: float) -> None:
    if run is None:
        return
    mark_failed(run, error)
    timings: dict[str, Any] = dict(batch.timings) if batch else {}
    timings["total"] = round(time.perf_counter() - started, 4)
    run.phase_timings = json.dumps(timings)
    _audit(run, {"error_code": error.code, "error": run.error_message})
    db.session.commit()
    log.warning("sync run %s failed: %s", run.id, error.code)


def _audit(run: SyncRun, extra: dict[str, Any]) -> None:
    audit.record(
        "aiaccount_push", f"sync_{run.status}", entity_id=run.id, blogger_id=run.blogger_id,
        actor=run.triggered_by, actor_label="auto-push" if run.trigger == "auto_push" else None,
        details={"type": run.sync_type, "kind": SYNC_TYPE_KINDS[run.sync_type],
                 "start": run.start_date, "end": run.end_date, "trigger": run.trigger,
                 "documents": run.row_count, "created": run.created_count, "skipped": run.skipped_count,
                 "changed": run.changed_count, "import_id": run.import_id, **extra},
    )
