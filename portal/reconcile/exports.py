"""What the page shows besides tables: the inline SVG chart's geometry, amounts as text, and the
CSV / xlsx downloads of the per-day table."""
from __future__ import annotations

import csv
import math
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from ..autopush import ORDER
from ..syncs import TYPE_LABELS
from .engine import FROM_LABELS, ZERO, Reconciliation, TypeResult


# --- the chart --------------------------------------------------------------------------------

CHART_W, CHART_H = 960, 280
PAD_R, PAD_T, PAD_B = 12, 16, 44
LABEL_CHAR_W = 7.2  # px per character of a 12 px axis label (digits, capitals), with some room


@dataclass
class Chart:
    sync_type: str
    width: int
    height: int
    bars: list[dict[str, Any]]
    markers: list[dict[str, Any]]
    y_ticks: list[dict[str, Any]]
    x_ticks: list[dict[str, Any]]
    plot: dict[str, float]


def _nice(value: Decimal) -> Decimal:
    """A round axis maximum ≥ value (1, 2, 5 × 10^n)."""
    if value <= 0:
        return Decimal(100)
    exponent = len(str(int(value))) - 1
    for step in (1, 2, 5, 10):
        top = Decimal(step) * Decimal(10) ** exponent
        if top >= value:
            return top
    return Decimal(10) ** (exponent + 1)


def build_chart(result: TypeResult, currency: str) -> Chart:
    """Geometry of a two-series bar chart (source vs in AiAccount per day), drawn as inline SVG."""
    days = result.days
    top = _nice(max((max(d.source_total, d.pushed_total) for d in days), default=ZERO))
    y_labels = [(f, money(top * Decimal(str(f)), currency)) for f in (0, 0.5, 1)]
    # The left margin fits the longest amount label ("SGD 50,000.00" is wider than "RM 5.00").
    pad_l = max(60, math.ceil(LABEL_CHAR_W * max(len(label) for _f, label in y_labels)) + 14)
    plot_w, plot_h = CHART_W - pad_l - PAD_R, CHART_H - PAD_T - PAD_B
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.4, 0.6)
    base_y = PAD_T + plot_h

    def height(amount: Decimal) -> float:
        return round(float(max(amount, ZERO) / top) * plot_h, 2)

    bars, markers = [], []
    for n, d in enumerate(days):
        x = pad_l + n * slot
        tip = _("%(day)s · Source %(source)s (%(n)d) · In AiAccount %(pushed)s (%(m)d) · %(status)s",
                day=d.day.isoformat(), source=money(d.source_total, currency), n=d.source_count,
                pushed=money(d.pushed_total, currency), m=d.pushed_count, status=d.label)
        for series, amount, offset in (("source", d.source_total, 0.1), ("aiaccount", d.pushed_total, 0.5)):
            h = height(amount)
            bars.append({"series": series, "x": round(x + slot * offset, 2), "y": round(base_y - h, 2),
                         "w": round(bar_w, 2), "h": h, "title": tip})
        if d.mismatch:
            markers.append({"x": round(x + slot / 2, 2), "y": PAD_T - 6 + 4, "title": tip, "status": d.status})
    y_ticks = [{"y": round(base_y - plot_h * f, 2), "label": label} for f, label in y_labels]
    picks = sorted({0, len(days) // 2, len(days) - 1}) if days else []
    x_ticks = [{"x": round(pad_l + (n + 0.5) * slot, 2), "label": days[n].day.isoformat()} for n in picks]
    return Chart(result.sync_type, CHART_W, CHART_H, bars, markers, y_ticks, x_ticks,
                 {"x": pad_l, "y": PAD_T, "w": plot_w, "h": plot_h, "base": base_y})


def money(amount: Decimal, currency: str = "MYR") -> str:
    symbol = "RM" if currency == "MYR" else currency
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol} {abs(amount):,.2f}"


# --- downloads --------------------------------------------------------------------------------


def table_rows(result: Reconciliation) -> tuple[list[str], list[list[Any]]]:
    """The per-day table (days with data or a mismatch) as header + rows, for CSV and xlsx."""
    header = [_("Type"), _("Day (MYT)"), _("Currency"), _("Source documents"), _("Source total"),
              _("In AiAccount documents"), _("In AiAccount total"), _("Difference"), _("Pushed figure from"),
              _("Status"), _("Status code")]
    rows = []
    for sync_type in ORDER:
        for d in result.types[sync_type].with_data:
            rows.append([str(TYPE_LABELS[sync_type]), d.day.isoformat(), result.currency,
                         d.source_count, d.source_total,
                         d.pushed_count, d.pushed_total, d.difference, str(FROM_LABELS[d.pushed_from]),
                         d.label, d.status])
    return header, rows


def to_csv(result: Reconciliation) -> bytes:
    header, rows = table_rows(result)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{v:.2f}" if isinstance(v, Decimal) else v for v in row])
    return buffer.getvalue().encode("utf-8-sig")  # the BOM lets Excel read Chinese labels


def to_xlsx(result: Reconciliation) -> bytes:
    import xlsxwriter

    header, rows = table_rows(result)
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet(_("Reconciliation")[:31])
    bold = book.add_format({"bold": True})
    amount = book.add_format({"num_format": "#,##0.00"})
    sheet.write_row(0, 0, header, bold)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, Decimal):
                sheet.write_number(r, c, float(value), amount)
            elif isinstance(value, int):
                sheet.write_number(r, c, value)
            else:
                sheet.write_string(r, c, value)
    sheet.set_column(0, 0, 20)
    sheet.set_column(1, 10, 16)
    summary = book.add_worksheet(_("Summary")[:31])
    summary.write_row(0, 0, [_("Type"), _("Source total"), _("In AiAccount total"), _("Missing documents"),
                             _("Failed days"), _("Currency")], bold)
    for r, sync_type in enumerate(ORDER, start=1):
        t = result.types[sync_type]
        summary.write_string(r, 0, str(TYPE_LABELS[sync_type]))
        summary.write_number(r, 1, float(t.source_total), amount)
        summary.write_number(r, 2, float(t.pushed_total), amount)
        summary.write_number(r, 3, t.missing)
        summary.write_number(r, 4, t.failed)
        summary.write_string(r, 5, result.currency)
    book.close()
    return buffer.getvalue()
