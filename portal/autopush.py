"""Auto-push: once a day, at each blogger's chosen hour (MYT), push every day since their last
complete auto-push (normally just yesterday), in the order POS Sales Invoice → POS Sales Receipt →
KOL Bill → KOL Payment, each step only after the previous one succeeded or had no data.

An hourly tick (``rq cron``, see portal/cron_jobs.py) finds the bloggers that are due and enqueues
one chain job per blogger; the chain runs its four steps in order inside that job.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import select

from rq import Retry

from .extensions import db
from .models import AiAccountCredential, AiAccountSettings, Blogger, SyncRun, User
from .queue import get_queue
from .syncs import request_sync
from .timeutil import myt_at, myt_today, to_myt, utcnow

log = logging.getLogger(__name__)
ORDER = ("pos_invoice", "pos_receipt", "kol_bill", "kol_payment")
CHAIN_RETRY_INTERVALS = [60, 300, 900]


@dataclass(frozen=True)
class Due:
    blogger_id: int
    start: date
    end: date


def due_bloggers(now: datetime | None = None) -> list[Due]:
    """Active, connected bloggers with auto-push on whose hour has come and who were not tried today.
    Marks them tried (the caller commits), so one day gets one attempt whatever the tick count."""
    now = now or utcnow()
    today, hour = myt_today(now), to_myt(now).hour
    yesterday = today - timedelta(days=1)
    oldest = yesterday - timedelta(days=current_app.config["AUTOPUSH_MAX_DAYS"] - 1)
    rows = db.session.execute(
        select(Blogger.id, AiAccountSettings)
        .join(AiAccountSettings, AiAccountSettings.blogger_id == Blogger.id)
        .join(AiAccountCredential, AiAccountCredential.blogger_id == Blogger.id)
        .join(User, User.id == Blogger.user_id)
        .where(Blogger.active.is_(True), User.active.is_(True), AiAccountSettings.auto_push_enabled.is_(True),
               AiAccountSettings.auto_push_hour <= hour)
        .where((AiAccountSettings.auto_push_attempted_on.is_(None))
               | (AiAccountSettings.auto_push_attempted_on < today))
        .order_by(Blogger.id)
    ).all()
    due = []
    for blogger_id, settings in rows:
        settings.auto_push_attempted_on = today
        last = settings.last_auto_push_date
        start = max(last + timedelta(days=1), oldest) if last else yesterday
        if start <= yesterday:
            due.append(Due(blogger_id, start, yesterday))
    return due


class ChainBusy(Exception):
    """A user's own sync of the same type is under way; the chain retries later."""


def run_chain(blogger_id: int, start: date, end: date, execute: Callable[[int], str]) -> str:
    """Run the four steps in order. Returns 'succeeded' when all four succeeded or had no data,
    else the status of the step that stopped the chain. Steps already done by an earlier attempt
    of this chain today are not repeated."""
    blogger = db.session.get(Blogger, blogger_id)
    since = myt_at(myt_today())
    for sync_type in ORDER:
        if _done_today(blogger_id, sync_type, start, end, since):
            continue
        run, created = request_sync(blogger, sync_type, start, end, trigger="auto_push", enqueue=False)
        if not created and run.trigger != "auto_push":
            raise ChainBusy(f"blogger {blogger_id} {sync_type}: run {run.id} is under way")
        status = execute(run.id)
        if status not in ("succeeded", "no_data"):
            log.warning("auto-push for blogger %s stopped at %s: %s", blogger_id, sync_type, status)
            return status
    settings = blogger.settings
    if settings.last_auto_push_date is None or settings.last_auto_push_date < end:
        settings.last_auto_push_date = end
    db.session.commit()
    return "succeeded"


def _done_today(blogger_id: int, sync_type: str, start: date, end: date, since: datetime) -> bool:
    return db.session.scalar(select(SyncRun.id).where(
        SyncRun.blogger_id == blogger_id, SyncRun.sync_type == sync_type, SyncRun.trigger == "auto_push",
        SyncRun.start_date == start, SyncRun.end_date == end, SyncRun.created_at >= since,
        SyncRun.status.in_(("succeeded", "no_data"))).limit(1)) is not None


def enqueue_due(now: datetime | None = None) -> list[Due]:
    """The hourly tick: one chain job per due blogger (ids and dates only)."""
    from .jobs import autopush_blogger

    due = due_bloggers(now)
    db.session.commit()
    queue = get_queue()
    for item in due:
        queue.enqueue(autopush_blogger, item.blogger_id, item.start.isoformat(), item.end.isoformat(),
                      job_id=f"autopush-b{item.blogger_id}-{item.end:%Y%m%d}",
                      retry=Retry(max=len(CHAIN_RETRY_INTERVALS), interval=CHAIN_RETRY_INTERVALS),
                      job_timeout=6 * 3600, description=f"AiAccount auto-push blogger {item.blogger_id}")
    log.info("auto-push tick: %d bloggers due", len(due))
    return due
