"""Asking for a sync: validate, record the run, enqueue its job; and reading runs back.

A second Sync of the same blogger + type while one is queued or running returns that run (a
partial unique index makes this hold under concurrency, whatever Redis holds).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import audit
from .aiaccount import AiAccountError
from .extensions import db
from .models import ACTIVE_RUN_STATUSES, SYNC_TYPES, Blogger, SyncRun, User
from .queue import get_queue, redis_connection
from .timeutil import myt_today, utcnow

MAX_RANGE_DAYS = 366
RETRY_INTERVALS = [10, 30, 90]  # default of config SYNC_RETRY_INTERVALS (seconds between RQ retries)
TYPE_LABELS = {
    "pos_invoice": _l("POS Sales Invoice"),
    "pos_receipt": _l("POS Sales Receipt"),
    "kol_bill": _l("KOL Bill"),
    "kol_payment": _l("KOL Payment"),
}


@dataclass
class SyncRequestError(Exception):
    """A request that cannot become a run; nothing was enqueued."""

    code: str
    message: str

    def __str__(self) -> str:
        return str(self.message)


def validate_request(blogger: Blogger, sync_type: str, start: date, end: date) -> None:
    if sync_type not in SYNC_TYPES:
        raise SyncRequestError("unknown_type", _l("Unknown sync type %(type)s.", type=sync_type[:40]))
    if end < start:
        raise SyncRequestError("reversed_dates", _l("The end date is before the start date."))
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise SyncRequestError("range_too_long", _l("Pick at most %(days)d days.", days=MAX_RANGE_DAYS))
    if end > myt_today():
        raise SyncRequestError("future_dates", _l("The end date is in the future."))
    if blogger.credential is None:
        raise SyncRequestError("not_connected", _l(
            "AiAccount is not connected — send your API key and company name to the super admin."))
    if blogger.settings is None:
        raise SyncRequestError("settings_missing", _l(
            "Your AiAccount settings are not set up yet — ask the super admin to save them."))


def active_run(blogger_id: int, sync_type: str) -> SyncRun | None:
    return db.session.scalar(select(SyncRun).where(
        SyncRun.blogger_id == blogger_id, SyncRun.sync_type == sync_type,
        SyncRun.status.in_(ACTIVE_RUN_STATUSES)))


def request_sync(blogger: Blogger, sync_type: str, start: date, end: date, *, trigger: str = "user",
                 user: User | None = None, enqueue: bool = True) -> tuple[SyncRun, bool]:
    """Record and enqueue a run; (run, True) — or (the run already under way, False)."""
    validate_request(blogger, sync_type, start, end)
    reap_stale_runs(blogger_id=blogger.id)
    existing = active_run(blogger.id, sync_type)
    if existing is not None:
        return existing, False
    run = SyncRun(blogger_id=blogger.id, sync_type=sync_type, start_date=start, end_date=end, status="queued",
                  trigger=trigger, triggered_by_id=user.id if user else None)
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:  # another request won the race: return its run
        db.session.rollback()
        existing = active_run(blogger.id, sync_type)
        if existing is None:
            raise
        return existing, False
    if enqueue:
        enqueue_run(run)
    return run, True


def enqueue_run(run: SyncRun) -> None:
    """Put the run's job on the queue (ids only: never a key). A dead queue fails the run clearly."""
    from .jobs import run_sync

    job_id = f"sync-run-{run.id}"
    intervals = list(current_app.config.get("SYNC_RETRY_INTERVALS", RETRY_INTERVALS))
    try:
        get_queue().enqueue(
            run_sync, run.id, job_id=job_id, retry=Retry(max=len(intervals), interval=intervals),
            job_timeout=3600, result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
            description=f"AiAccount sync run {run.id} ({run.sync_type})",
        )
    except RedisError:
        error = AiAccountError.make("queue_unavailable")
        mark_failed(run, error)
        audit.record("aiaccount_push", "sync_failed", entity_id=run.id, blogger_id=run.blogger_id,
                     details={"type": run.sync_type, "error_code": error.code})
        db.session.commit()
        raise SyncRequestError("queue_unavailable", _l("The sync queue is not reachable. Try again shortly.")) from None
    run.job_id = job_id
    db.session.commit()


def record_error(run: SyncRun, error: AiAccountError) -> None:
    """Put a typed error on a run: code, reason, fix, and the whole error for the pill (en/zh)."""
    run.error_code = error.code
    run.error_message = (error.reason_en if not error.message else f"{error.reason_en}: {error.message}")[:500]
    run.error_hint = error.fix_en[:500]
    run.error_detail = json.dumps(error.to_dict(), default=str, ensure_ascii=False)


def mark_failed(run: SyncRun, error: AiAccountError, now: datetime | None = None) -> None:
    """End a run red with ``error`` (the caller audits and commits)."""
    record_error(run, error)
    run.status, run.finished_at = "failed", now or utcnow()


def reap_stale_runs(*, blogger_id: int | None = None, requeue_after: int = 60) -> dict[str, int]:
    """Runs whose worker died are marked failed (never 'running' for ever); queued runs whose job
    the queue lost (Redis restarted or flushed) are enqueued again."""
    cfg = current_app.config
    now = utcnow()
    counts = {"failed": 0, "requeued": 0}
    query = select(SyncRun).where(SyncRun.status.in_(ACTIVE_RUN_STATUSES))
    if blogger_id is not None:
        query = query.where(SyncRun.blogger_id == blogger_id)
    for run in db.session.scalars(query).all():
        if run.status == "running" and (run.heartbeat_at or run.created_at) < now - timedelta(
                seconds=cfg["SYNC_STALE_SECONDS"]):
            error = AiAccountError.make("worker_lost")
            mark_failed(run, error, now)
            audit.record("aiaccount_push", "sync_failed", entity_id=run.id, blogger_id=run.blogger_id,
                         details={"type": run.sync_type, "error_code": error.code})
            counts["failed"] += 1
        elif run.status == "queued" and run.created_at < now - timedelta(seconds=requeue_after) \
                and not _job_exists(run.job_id):
            db.session.commit()
            enqueue_run(run)
            counts["requeued"] += 1
    db.session.commit()
    return counts


def _job_exists(job_id: str | None) -> bool:
    if not job_id:
        return False
    try:
        job = Job.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return False
    except RedisError:
        return True  # cannot tell: leave it alone
    return job.get_status(refresh=False) is not None


def latest_runs(blogger_id: int) -> dict[str, SyncRun]:
    """The newest run of each type, in one query."""
    newest = (select(SyncRun.sync_type, func.max(SyncRun.id).label("id"))
              .where(SyncRun.blogger_id == blogger_id).group_by(SyncRun.sync_type).subquery())
    runs = db.session.scalars(select(SyncRun).join(newest, SyncRun.id == newest.c.id)).all()
    return {run.sync_type: run for run in runs}


def latest_run(blogger_id: int, sync_type: str) -> SyncRun | None:
    """The pill's one query (index sync_runs (blogger, type, created_at))."""
    return db.session.scalar(select(SyncRun).where(
        SyncRun.blogger_id == blogger_id, SyncRun.sync_type == sync_type)
        .order_by(SyncRun.created_at.desc(), SyncRun.id.desc()).limit(1))


def recent_runs(blogger_id: int, sync_type: str, page: int = 1, per_page: int = 20):
    return db.paginate(select(SyncRun).where(SyncRun.blogger_id == blogger_id, SyncRun.sync_type == sync_type)
                       .order_by(SyncRun.created_at.desc(), SyncRun.id.desc()),
                       page=page, per_page=per_page, error_out=False)


def get_run_for_blogger(blogger_id: int, run_id: int) -> SyncRun | None:
    run = db.session.get(SyncRun, run_id)
    return run if run is not None and run.blogger_id == blogger_id else None
