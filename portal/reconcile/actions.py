"""The two things the page asks the worker to do: read AiAccount's book into snapshots, and push
what's missing (one run per type, run in auto-push order by one job). Job functions take ids and
ISO dates only and resolve everything inside the worker's app context (``portal.jobs._app``)."""
from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError
from sqlalchemy import delete, select

from .. import audit, syncs
from ..aiaccount import SYNC_TYPE_KINDS, AiAccountError
from ..autopush import ORDER
from ..extensions import db
from ..models import AuditLog, Blogger, ReconcileSnapshot, SyncRun
from ..queue import get_queue
from ..timeutil import utcnow
from .engine import ZERO, currencies

log = logging.getLogger(__name__)
AUDIT_ENTITY = "aiaccount_reconcile"
REFRESH_STALE = timedelta(minutes=10)  # a refresh asked for this long ago and never answered: not running


# --- AiAccount's side: the refresh job ----------------------------------------------------------


def refresh_snapshots(blogger_id: int, start: str, end: str) -> str:
    """RQ job: read what AiAccount holds for start..end (every type) and store it per day."""
    from ..jobs import _app

    with _app().app_context():
        return _refresh(blogger_id, date.fromisoformat(start), date.fromisoformat(end))


def _refresh(blogger_id: int, start: date, end: date) -> str:
    from ..jobs import client_for

    blogger = db.session.get(Blogger, blogger_id)
    counts: dict[tuple[str, date, str], tuple[int, Decimal]] = {}
    try:
        if blogger is None or blogger.credential is None:
            raise AiAccountError.make("not_connected")
        client = client_for(blogger.credential)
        try:
            for sync_type in ORDER:
                for document in client.list_documents(SYNC_TYPE_KINDS[sync_type], start, end):
                    key = (sync_type, document.date, document.currency)
                    n, total = counts.get(key, (0, ZERO))
                    counts[key] = (n + 1, total + document.total)
        finally:
            client.close()
    except AiAccountError as error:
        audit.record(AUDIT_ENTITY, "refresh_failed", blogger_id=blogger_id, actor_label="worker",
                     details={"start": start, "end": end, "error_code": error.code, "error": error.reason_en,
                              "fix": error.fix_en})
        db.session.commit()
        log.warning("reconcile refresh for blogger %s failed: %s", blogger_id, error.code)
        return "failed"
    now = utcnow()
    db.session.execute(delete(ReconcileSnapshot).where(
        ReconcileSnapshot.blogger_id == blogger_id, ReconcileSnapshot.day >= start, ReconcileSnapshot.day <= end))
    span = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    # A row for every day and every currency the blogger has (and any AiAccount answered with):
    # zeros where AiAccount holds nothing, so "nothing in AiAccount" is known, not guessed.
    in_book = sorted(set(currencies(blogger_id)) | {currency for _t, _d, currency in counts})
    db.session.add_all(
        ReconcileSnapshot(blogger_id=blogger_id, sync_type=sync_type, day=day, currency=currency,
                          documents=counts.get((sync_type, day, currency), (0, ZERO))[0],
                          total=counts.get((sync_type, day, currency), (0, ZERO))[1], fetched_at=now)
        for sync_type in ORDER for day in span for currency in in_book)
    audit.record(AUDIT_ENTITY, "refresh_succeeded", blogger_id=blogger_id, actor_label="worker",
                 details={"start": start, "end": end, "documents": sum(n for n, _ in counts.values())})
    db.session.commit()
    return "succeeded"


def refresh_state(blogger_id: int) -> AuditLog | None:
    """The newest refresh entry (requested / succeeded / failed) of a blogger."""
    return db.session.scalar(select(AuditLog).where(
        AuditLog.entity_type == AUDIT_ENTITY, AuditLog.blogger_id == blogger_id,
        AuditLog.action.in_(("refresh_requested", "refresh_succeeded", "refresh_failed")))
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc()).limit(1))


def refresh_running(entry: AuditLog | None) -> bool:
    return entry is not None and entry.action == "refresh_requested" and entry.created_at > utcnow() - REFRESH_STALE


def request_refresh(blogger: Blogger, start: date, end: date, user: Any = None) -> bool:
    """Enqueue the refresh job (ids and dates only); False when one is already under way."""
    if refresh_running(refresh_state(blogger.id)):
        return False
    get_queue().enqueue(refresh_snapshots, blogger.id, start.isoformat(), end.isoformat(),
                        job_id=f"reconcile-refresh-b{blogger.id}-{utcnow():%Y%m%d%H%M%S%f}", job_timeout=1800,
                        result_ttl=3600, description=f"AiAccount reconcile refresh blogger {blogger.id}")
    audit.record(AUDIT_ENTITY, "refresh_requested", blogger_id=blogger.id, actor=user,
                 details={"start": start, "end": end})
    db.session.commit()
    return True


# --- push what's missing ----------------------------------------------------------------------


def push_missing(blogger_id: int, run_ids: list[int]) -> list[str]:
    """RQ job: run the recorded runs one after the other (they are in auto-push order, so receipts
    find their invoices and payments their bills). Each run records its own outcome."""
    from ..jobs import _app, execute_run

    with _app().app_context():
        return [execute_run(run_id) for run_id in run_ids]


def request_fix(blogger: Blogger, ranges: list[tuple[str, date, date]],
                user: Any = None) -> tuple[list[SyncRun], list[str]]:
    """Record one run per mismatched type over ``ranges`` ((type, first, last fixable day), in
    auto-push order: ``merged_fix_ranges``) and enqueue one job that runs them in order. Returns
    (runs created, types skipped because a sync of theirs is under way)."""
    created, busy = [], []
    job_id = f"reconcile-fix-b{blogger.id}-{utcnow():%Y%m%d%H%M%S%f}"
    for sync_type, start, end in ranges:
        run, new = syncs.request_sync(blogger, sync_type, start, end, trigger="reconcile", user=user, enqueue=False)
        if not new:
            busy.append(sync_type)
            continue
        run.job_id = job_id  # the reaper sees the job and leaves the queued run to it
        created.append(run)
    db.session.commit()
    if created:
        try:
            get_queue().enqueue(push_missing, blogger.id, [run.id for run in created], job_id=job_id,
                                job_timeout=6 * 3600, result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
                                description=f"AiAccount reconcile fix blogger {blogger.id}")
        except RedisError:
            error = AiAccountError.make("queue_unavailable")
            for run in created:
                syncs.mark_failed(run, error)
            db.session.commit()
            raise syncs.SyncRequestError("queue_unavailable", _l("The sync queue is not reachable. Try again shortly.")) from None
    audit.record(AUDIT_ENTITY, "fix_requested", blogger_id=blogger.id, actor=user,
                 details={"runs": [{"id": r.id, "type": r.sync_type, "start": r.start_date, "end": r.end_date}
                                   for r in created], "busy": busy})
    db.session.commit()
    return created, busy
