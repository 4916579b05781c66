"""The one helper for time: stored in UTC, shown and filtered in Malaysia time.

NS16 runs on MYT (UTC+8, no daylight saving), so a fixed offset is exact.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

MYT = timezone(timedelta(hours=8), "MYT")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC (what the database hands back) and return it aware."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def to_myt(value: datetime) -> datetime:
    return as_utc(value).astimezone(MYT)


def myt_date(value: datetime) -> date:
    """The MYT calendar day a UTC instant falls on (a naive value is UTC). Once per document."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(MYT).date()


def myt_today(now: datetime | None = None) -> date:
    return myt_date(now or utcnow())


def myt_range_to_utc(start: date, end: date) -> tuple[datetime, datetime]:
    """UTC bounds [from, to) covering the MYT days start..end inclusive. The first and last
    representable days (0001-01-01, 9999-12-31) clamp to datetime.min / max instead of overflowing."""
    try:
        lower = datetime.combine(start, time.min, MYT).astimezone(timezone.utc)
    except OverflowError:
        lower = datetime.min.replace(tzinfo=timezone.utc)
    try:
        upper = datetime.combine(end + timedelta(days=1), time.min, MYT).astimezone(timezone.utc)
    except OverflowError:
        upper = datetime.max.replace(tzinfo=timezone.utc)
    return lower, upper


def myt_at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    """A MYT wall-clock time as an aware UTC datetime."""
    return datetime.combine(day, time(hour, minute), MYT).astimezone(timezone.utc)


def short_stamp(value: datetime | None) -> str:
    """'5/15 14:30' in MYT, as the status pill shows it."""
    if value is None:
        return ""
    local = to_myt(value)
    return f"{local.month}/{local.day} {local:%H:%M}"


def full_stamp(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"{to_myt(value):%Y-%m-%d %H:%M} MYT"
