"""Writing (and reading back) AiAccount import files.

``write_xlsx`` is on the sync hot path: xlsxwriter's typed calls, the columns grouped by type once
per kind from the line type's annotations, so no per-cell type dispatch (docs/performance.md).
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import IO, Any, get_type_hints

import python_calamine
import xlsxwriter

from portal.aiaccount.templates import COLUMNS, LINE_TYPES, Line

EXCEL_EPOCH = date(1899, 12, 30)  # serial day 0 of Excel's 1900 date system (after Feb 1900)
QTY_FIELDS = frozenset({"qty"})
CENT, MILLI = Decimal("0.01"), Decimal("0.001")


def column_types(kind: str) -> list[str]:
    """"date" | "money" | "qty" | "text" for each column of ``kind``."""
    line_type = LINE_TYPES[kind]
    hints = get_type_hints(line_type)
    types = []
    for name in line_type._fields:
        hint = hints[name]
        if hint is date:
            types.append("date")
        elif hint is Decimal:
            types.append("qty" if name in QTY_FIELDS else "money")
        else:
            types.append("text")
    return types


FIXED_CREATED = datetime(2000, 1, 1, tzinfo=timezone.utc)
EXCEL_EPOCH_ORDINAL = EXCEL_EPOCH.toordinal()
NUMBER_FORMATS = {"date": "yyyy-mm-dd", "money": "0.00", "qty": "0.000"}


def write_xlsx(kind: str, lines: Iterable[Line], fileobj: IO[bytes]) -> int:
    """Write the header and ``lines`` of ``kind`` as an xlsx file; return the number of lines.

    Dates are real Excel dates, money numbers with 2 dp, Qty with 3 dp, text always a string
    (never a formula: "=cmd" stays text), an empty text an empty cell.

    Cells go through xlsxwriter's public typed calls, column groups chosen once per kind. The
    workbook keeps one file's cells in memory and writes text as a shared-string table: ~30 %
    faster than constant_memory's inline strings (docs/performance.md), and memory stays
    bounded because a sync writes files of at most SYNC_CHUNK_DOCUMENTS documents.
    """
    workbook = xlsxwriter.Workbook(fileobj)
    # A fixed creation date makes the bytes a pure function of the lines, so a rebuilt retry
    # sends the very file its Idempotency-Key was first used with.
    workbook.set_properties({"created": FIXED_CREATED})
    sheet = workbook.add_worksheet(kind)
    types = column_types(kind)
    formats = {t: workbook.add_format({"num_format": f}) for t, f in NUMBER_FORMATS.items()}
    text_cols = [col for col, t in enumerate(types) if t == "text"]
    date_cols = [(col, formats[t]) for col, t in enumerate(types) if t == "date"]
    number_cols = [(col, formats[t]) for col, t in enumerate(types) if t in ("money", "qty")]
    header = workbook.add_format({"bold": True})
    for col, name in enumerate(COLUMNS[kind]):
        sheet.set_column(col, col, max(len(name) + 2, 12))
        sheet.write_string(0, col, name, header)
    sheet.freeze_panes(1, 0)
    write_string, write_number = sheet.write_string, sheet.write_number
    epoch = EXCEL_EPOCH_ORDINAL
    row = 0
    for row, line in enumerate(lines, start=1):
        if len(line) != len(types):
            raise ValueError(f"line {row} has {len(line)} values, {kind} has {len(types)} columns")
        for col in text_cols:
            value = line[col]
            if value:
                write_string(row, col, value)
        for col, fmt in date_cols:
            write_number(row, col, line[col].toordinal() - epoch, fmt)
        for col, fmt in number_cols:
            write_number(row, col, float(line[col]), fmt)
    workbook.close()
    _release(sheet)
    return row


def _release(sheet: Any) -> None:
    """Let reference counting free the file's cells the moment the workbook is dropped.

    xlsxwriter gives each worksheet its workbook's bound ``add_format`` (3.3), a reference cycle
    that keeps the whole cell table (~14 objects per invoice line) alive until Python's full
    garbage collection gets to it: a job then carries one chunk's cells into the next and pays
    for collections that walk them (docs/performance.md). Dropping that one attribute after
    ``close()`` breaks the cycle; tests/test_aiaccount_xlsx.py fails if a new version adds another.
    """
    vars(sheet).pop("workbook_add_format", None)


def read_xlsx(kind: str, data: bytes) -> list[Line]:
    """Lines of an import file of ``kind`` (for tests and previews); ``ValueError`` if malformed.

    Columns are found by header name; money is rounded half-up to 2 dp and Qty to 3 dp, as
    AiAccount reads them.
    """
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except python_calamine.CalamineError as exc:
        raise ValueError(f"not a readable xlsx file: {exc}") from exc
    header = [str(cell).strip() for cell in rows[0]] if rows else []
    columns = COLUMNS[kind]
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValueError("missing columns: " + ", ".join(missing))
    positions = [header.index(name) for name in columns]
    types = column_types(kind)
    line_type = LINE_TYPES[kind]
    lines = []
    for number, cells in enumerate(rows[1:], start=2):
        if all(cell == "" for cell in cells):
            continue
        try:
            values = [_read_cell(cells[p], t) for p, t in zip(positions, types, strict=True)]
        except (ValueError, InvalidOperation) as exc:
            raise ValueError(f"row {number}: {exc}") from exc
        lines.append(line_type(*values))
    return lines


def _read_cell(cell: Any, kind: str) -> Any:
    if kind == "text":
        return str(int(cell)) if isinstance(cell, float) and cell.is_integer() else str(cell)
    if kind == "date":
        if isinstance(cell, datetime):
            return cell.date()
        if isinstance(cell, date):
            return cell
        return date.fromisoformat(str(cell))
    number = Decimal(repr(cell) if isinstance(cell, float) else str(cell))
    return number.quantize(MILLI if kind == "qty" else CENT, ROUND_HALF_UP)
