"""The reconciliation itself: NS16's source per MYT day (SQL aggregates) against what was pushed
and accepted (AiAccount snapshots, else the sync runs), each (type, day) given one status.

One reconciliation is one document currency: a blogger with a MYR store and an SGD store has two
books of figures that must never be added together (``currencies``; KOL documents are in the
currency of the blogger's AiAccount settings). "Push what's missing" and the alerts look at every
currency (``reconcile_all``, ``merged_fix_ranges``)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Date, case, false, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ..autopush import ORDER
from ..extensions import db
from ..models import ACTIVE_RUN_STATUSES, AiAccountSettings, ReconcileSnapshot, Store, SyncRun, UTCDateTime
from ..sources import KS, S, T
from ..timeutil import myt_range_to_utc

ZERO = Decimal("0.00")
SUCCESS = ("succeeded", "no_data")

# What a (type, day) can be. Only FIXABLE ones are pushed by "Push what's missing".
STATUSES = ("ok", "in_progress", "never_pushed", "failed", "arrived_after", "changed", "not_in_aiaccount")
FIXABLE = ("never_pushed", "failed", "arrived_after", "not_in_aiaccount")
STATUS_LABELS = {
    "ok": _l("Matches"),
    "in_progress": _l("Sync under way"),
    "never_pushed": _l("Never pushed"),
    "failed": _l("Push failed"),
    "arrived_after": _l("Arrived after the push"),
    "changed": _l("Changed since pushed"),
    "not_in_aiaccount": _l("Not in AiAccount"),
}
STATUS_HELP = {
    "never_pushed": _l("No sync has covered this day yet. Push what's missing."),
    "failed": _l("The last sync covering this day failed. Fix the cause shown on the sync card, then push what's missing."),
    "arrived_after": _l("NS16 rows were added or edited after the last push (an offline POS sale, a refund or a "
                        "settlement recorded later). Push what's missing."),
    "changed": _l("A document changed in NS16 after it was pushed; AiAccount kept the first version. Correct or "
                  "delete it in AiAccount, then refresh from AiAccount."),
    "not_in_aiaccount": _l("AiAccount holds fewer documents than NS16 for this day. Push what's missing; if it "
                           "stays, check the skipped rows on the run."),
    "in_progress": _l("A sync covering this day is queued or running."),
}
FROM_LABELS = {
    "aiaccount": _l("AiAccount"),
    "runs": _l("Sync runs"),
    "none": _l("Nothing pushed"),
}

# --- the MYT day of a stored UTC instant, in SQL ------------------------------------------------


class myt_day(FunctionElement):  # noqa: N801 - reads as an SQL function
    """The MYT calendar day of a UTC timestamp column (UTC+8, no DST), on SQLite and PostgreSQL."""

    type = Date()
    inherit_cache = True
    name = "myt_day"


@compiles(myt_day, "sqlite")
def _myt_day_sqlite(element, compiler, **kw):  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)
    return "date(%s, '+8 hours')" % compiler.process(element.clauses, **kw)


@compiles(myt_day, "postgresql")
def _myt_day_postgresql(element, compiler, **kw):
    return "CAST((%s AT TIME ZONE 'UTC') + INTERVAL '8 hours' AS DATE)" % compiler.process(element.clauses, **kw)


def home_currency(blogger_id: int) -> str:
    """The currency of the blogger's AiAccount settings (their KOL documents' currency)."""
    return db.session.scalar(select(AiAccountSettings.currency).where(
        AiAccountSettings.blogger_id == blogger_id)) or "MYR"


def currencies(blogger_id: int) -> list[str]:
    """The blogger's document currencies: the home currency first, then their stores' others."""
    home = home_currency(blogger_id)
    stores = set(db.session.scalars(select(Store.currency).where(Store.blogger_id == blogger_id).distinct()))
    return [home] + sorted(stores - {home})


def _source_parts(sync_type: str, blogger_id: int, start: date, end: date, currency: str, home: str):
    """(day expression, amount column, filters) of one type in one currency: the filters of
    portal/sources.py, plus the builders' one simple skip rule (a settlement with no commission is
    never a document). POS documents carry their store's currency, KOL documents the home one."""
    if sync_type in ("pos_invoice", "pos_receipt"):
        lower, upper = myt_range_to_utc(start, end)
        when = T.c.created_at if sync_type == "pos_invoice" else T.c.paid_at
        status = T.c.status != "voided" if sync_type == "pos_invoice" else T.c.status == "paid"
        stores = select(S.c.id).where(S.c.blogger_id == blogger_id, S.c.currency == currency)
        return myt_day(when), T.c.total, T.c.updated_at, [
            T.c.blogger_id == blogger_id, status, when >= lower, when < upper, T.c.store_id.in_(stores)]
    in_currency = [] if currency == home else [false()]
    if sync_type == "kol_bill":
        return KS.c.settled_date, KS.c.commission, KS.c.updated_at, [
            KS.c.blogger_id == blogger_id, KS.c.settled_date >= start, KS.c.settled_date <= end, KS.c.commission > 0,
            *in_currency]
    lower, upper = myt_range_to_utc(start, end)
    return myt_day(KS.c.paid_at), KS.c.commission, KS.c.updated_at, [
        KS.c.blogger_id == blogger_id, KS.c.status == "paid", KS.c.paid_at >= lower, KS.c.paid_at < upper,
        KS.c.commission > 0, *in_currency]


def source_by_day(sync_type: str, blogger_id: int, start: date, end: date, currency: str,
                  home: str) -> dict[date, tuple[int, Decimal, Any]]:
    """{day: (documents, total, last updated_at)} in one GROUP BY query."""
    day, amount, updated, filters = _source_parts(sync_type, blogger_id, start, end, currency, home)
    query = (select(day.label("day"), func.count().label("n"), func.sum(amount).label("total"),
                    func.max(updated).label("updated"))
             .where(*filters).group_by(day))
    return {_as_date(r.day): (r.n, _money(r.total), r.updated) for r in db.session.execute(query)}


def late_by_day(sync_type: str, blogger_id: int, cutoffs: dict[date, datetime], currency: str,
                home: str) -> dict[date, tuple[int, Decimal]]:
    """{day: (documents, total)} of the rows added or edited after that day's last push, in one
    query: the per-day cutoff is a CASE on the day."""
    if not cutoffs:
        return {}
    day, amount, updated, filters = _source_parts(sync_type, blogger_id, min(cutoffs), max(cutoffs), currency, home)
    cutoff = case({d: literal(c, UTCDateTime()) for d, c in cutoffs.items()}, value=day)
    query = (select(day.label("day"), func.count().label("n"), func.sum(amount).label("total"))
             .where(*filters, updated > cutoff).group_by(day))
    return {_as_date(r.day): (r.n, _money(r.total)) for r in db.session.execute(query)}


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _money(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(value).quantize(Decimal("0.01"))


# --- the reconciliation -----------------------------------------------------------------------


@dataclass
class Day:
    sync_type: str
    day: date
    source_count: int = 0
    source_total: Decimal = ZERO
    pushed_count: int = 0
    pushed_total: Decimal = ZERO
    pushed_from: str = "none"  # aiaccount | runs | none
    status: str = "ok"
    run_id: int | None = None  # the last run that covered the day

    @property
    def difference(self) -> Decimal:
        return self.source_total - self.pushed_total

    @property
    def mismatch(self) -> bool:
        return self.status not in ("ok", "in_progress")

    @property
    def has_data(self) -> bool:
        return bool(self.source_count or self.pushed_count or self.status != "ok")

    @property
    def label(self) -> str:
        return str(STATUS_LABELS[self.status])


@dataclass
class TypeResult:
    sync_type: str
    days: list[Day] = field(default_factory=list)  # every day of the range, in order

    @property
    def source_total(self) -> Decimal:
        return sum((d.source_total for d in self.days), ZERO)

    @property
    def pushed_total(self) -> Decimal:
        return sum((d.pushed_total for d in self.days), ZERO)

    @property
    def missing(self) -> int:
        """Source documents not (yet) in AiAccount, outside the days whose push failed (days with a
        sync under way count until it has pushed them)."""
        return sum(max(d.source_count - d.pushed_count, 0) for d in self.days
                   if d.status not in ("ok", "failed"))

    @property
    def failed(self) -> int:
        """Days whose last push failed."""
        return sum(1 for d in self.days if d.status == "failed")

    @property
    def mismatched(self) -> list[Day]:
        return [d for d in self.days if d.mismatch]

    @property
    def with_data(self) -> list[Day]:
        return [d for d in self.days if d.has_data]

    @property
    def fix_range(self) -> tuple[date, date] | None:
        days = [d.day for d in self.days if d.status in FIXABLE]
        return (min(days), max(days)) if days else None


@dataclass
class Reconciliation:
    blogger_id: int
    start: date
    end: date
    types: dict[str, TypeResult]
    snapshot_at: datetime | None
    currency: str = "MYR"

    @property
    def fix_ranges(self) -> list[tuple[str, date, date]]:
        """What "Push what's missing" pushes: per type (auto-push order) its first..last fixable day."""
        ranges = []
        for sync_type in ORDER:
            span = self.types[sync_type].fix_range
            if span:
                ranges.append((sync_type, *span))
        return ranges

    @property
    def mismatched(self) -> list[Day]:
        return [d for t in self.types.values() for d in t.mismatched]


@dataclass
class _Cover:
    """What the runs say about one (type, day)."""

    last_status: str | None = None
    last_run: int | None = None
    last_finished: datetime | None = None
    first_success: datetime | None = None
    last_success: datetime | None = None
    success_changed: bool = False
    active: int | None = None


def _coverage(blogger_id: int, start: date, end: date) -> dict[tuple[str, date], _Cover]:
    """Walk the runs overlapping the range (oldest first) over the days each one covered."""
    rows = db.session.execute(
        select(SyncRun.id, SyncRun.sync_type, SyncRun.start_date, SyncRun.end_date, SyncRun.status,
               SyncRun.finished_at, SyncRun.changed_count)
        .where(SyncRun.blogger_id == blogger_id, SyncRun.start_date <= end, SyncRun.end_date >= start)
        .order_by(SyncRun.created_at, SyncRun.id)).all()
    covers: dict[tuple[str, date], _Cover] = defaultdict(_Cover)
    for run in rows:
        day, last = max(run.start_date, start), min(run.end_date, end)
        while day <= last:
            cover = covers[(run.sync_type, day)]
            if run.status in ACTIVE_RUN_STATUSES:
                cover.active = run.id
            else:
                cover.last_status, cover.last_run, cover.last_finished = run.status, run.id, run.finished_at
                if run.status in SUCCESS and run.finished_at is not None:
                    if cover.first_success is None or run.finished_at < cover.first_success:
                        cover.first_success = run.finished_at
                    if cover.last_success is None or run.finished_at >= cover.last_success:
                        cover.last_success = run.finished_at
                        cover.success_changed = run.status == "succeeded" and run.changed_count > 0
            day += timedelta(days=1)
    return covers


def reconcile(blogger_id: int, start: date, end: date, currency: str | None = None) -> Reconciliation:
    """The reconciliation of start..end in one document currency (default: the home currency):
    4 GROUP BY queries on the source tables (plus one per type with rows edited after their push),
    one on the runs, one on the snapshots."""
    home = home_currency(blogger_id)
    currency = currency or home
    covers = _coverage(blogger_id, start, end)
    snapshots = {(s.sync_type, s.day): s for s in db.session.scalars(select(ReconcileSnapshot).where(
        ReconcileSnapshot.blogger_id == blogger_id, ReconcileSnapshot.currency == currency,
        ReconcileSnapshot.day >= start, ReconcileSnapshot.day <= end))}
    snapshot_at = max((s.fetched_at for s in snapshots.values()), default=None)
    span = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    empty_cover = _Cover()
    types = {}
    for sync_type in ORDER:
        source = source_by_day(sync_type, blogger_id, start, end, currency, home)
        late_cutoffs = {}
        for day, (_n, _total, updated) in source.items():
            cover = covers.get((sync_type, day), empty_cover)
            if cover.last_success is not None and updated is not None and updated > cover.last_success \
                    and not _fresh(snapshots.get((sync_type, day)), cover):
                late_cutoffs[day] = cover.last_success
        late = late_by_day(sync_type, blogger_id, late_cutoffs, currency, home)
        result = TypeResult(sync_type)
        for day in span:
            count, total, updated = source.get(day, (0, ZERO, None))
            result.days.append(_judge(sync_type, day, count, total, updated, covers.get((sync_type, day), empty_cover),
                                      snapshots.get((sync_type, day)), late.get(day)))
        types[sync_type] = result
    return Reconciliation(blogger_id, start, end, types, snapshot_at, currency)


def reconcile_all(blogger_id: int, start: date, end: date) -> list[Reconciliation]:
    """One reconciliation per document currency of the blogger, the home currency first."""
    return [reconcile(blogger_id, start, end, currency) for currency in currencies(blogger_id)]


def merged_fix_ranges(results: list[Reconciliation]) -> list[tuple[str, date, date]]:
    """What "Push what's missing" pushes over every currency: per type (auto-push order) the first
    to the last fixable day of any currency (a sync covers all of a day's documents)."""
    spans: dict[str, tuple[date, date]] = {}
    for result in results:
        for sync_type, first, last in result.fix_ranges:
            known = spans.get(sync_type)
            spans[sync_type] = (min(first, known[0]), max(last, known[1])) if known else (first, last)
    return [(t, *spans[t]) for t in ORDER if t in spans]


def _fresh(snapshot: ReconcileSnapshot | None, cover: _Cover) -> bool:
    """A snapshot read after the last run covering the day finished tells what AiAccount holds."""
    return snapshot is not None and (cover.last_finished is None or snapshot.fetched_at >= cover.last_finished)


def _judge(sync_type: str, day: date, count: int, total: Decimal, updated: datetime | None, cover: _Cover,
           snapshot: ReconcileSnapshot | None, late: tuple[int, Decimal] | None) -> Day:
    row = Day(sync_type, day, count, total, run_id=cover.active or cover.last_run)
    if _fresh(snapshot, cover):
        row.pushed_count, row.pushed_total, row.pushed_from = snapshot.documents, _money(snapshot.total), "aiaccount"
        if (count, total) == (row.pushed_count, row.pushed_total):
            row.status = "ok"
        elif cover.active:
            row.status = "in_progress"
        elif cover.last_status == "failed":
            row.status = "failed"
        elif cover.last_status is None:
            row.status = "never_pushed"
        elif row.pushed_count < count:
            late_rows = updated is not None and cover.last_success is not None and updated > cover.last_success
            row.status = "arrived_after" if late_rows else "not_in_aiaccount"
        else:
            row.status = "changed"
        return row
    if cover.last_success is None:  # nothing from here ever reached AiAccount for this day
        if cover.active:
            row.status = "in_progress"
        elif cover.last_status == "failed":
            row.status = "failed"
        elif count:
            row.status = "never_pushed"
        return row
    late_count, late_total = late or (0, ZERO)
    row.pushed_count, row.pushed_total, row.pushed_from = count - late_count, total - late_total, "runs"
    is_late = updated is not None and updated > cover.last_success
    if cover.active and (is_late or cover.last_status == "failed"):
        row.status = "in_progress"
    elif is_late:
        row.status = "failed" if cover.last_status == "failed" else "arrived_after"
    elif cover.success_changed and updated is not None and cover.first_success is not None \
            and updated > cover.first_success:
        row.status = "changed"
    return row
