"""Writing (and reading back) AiAccount import files.

``write_xlsx`` is on the sync hot path: xlsxwriter in constant_memory mode, one typed writer per
column chosen once from the line type's annotations, so no per-cell type dispatch.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import IO, Any, get_type_hints

import python_calamine
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from portal.aiaccount.templates import COLUMNS, LINE_TYPES, Line

EXCEL_EPOCH = date(1899, 12, 30)  # serial day 0 of Excel's 1900 date system (after Feb 1900)
QTY_FIELDS = frozenset({"qty"})
CENT, MILLI = Decimal("0.01"), Decimal("0.001")

CellWriter = Callable[[Worksheet, int, int, Any], object]


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


def write_xlsx(kind: str, lines: Iterable[Line], fileobj: IO[bytes]) -> int:
    """Write the header and ``lines`` of ``kind`` as an xlsx file; return the number of lines.

    Dates are real Excel dates, money numbers with 2 dp, Qty with 3 dp, text always a string
    (never a formula: "=cmd" stays text).
    """
    workbook = xlsxwriter.Workbook(fileobj, {"constant_memory": True})
    # A fixed creation date makes the bytes a pure function of the lines, so a rebuilt retry
    # sends the very file its Idempotency-Key was first used with.
    workbook.set_properties({"created": FIXED_CREATED})
    sheet = workbook.add_worksheet(kind)
    writers = _column_writers(workbook, column_types(kind))
    header = workbook.add_format({"bold": True})
    for col, name in enumerate(COLUMNS[kind]):
        sheet.set_column(col, col, max(len(name) + 2, 12))
        sheet.write_string(0, col, name, header)
    sheet.freeze_panes(1, 0)
    row = 0
    for row, line in enumerate(lines, start=1):
        for col, (writer, value) in enumerate(zip(writers, line, strict=True)):
            writer(sheet, row, col, value)
    workbook.close()
    return row


def _column_writers(workbook: xlsxwriter.Workbook, types: list[str]) -> list[CellWriter]:
    formats = {
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "money": workbook.add_format({"num_format": "0.00"}),
        "qty": workbook.add_format({"num_format": "0.000"}),
    }

    def number(fmt: Format) -> CellWriter:
        return lambda sheet, row, col, value: sheet.write_number(row, col, float(value), fmt)

    def excel_date(fmt: Format) -> CellWriter:
        return lambda sheet, row, col, value: sheet.write_number(
            row, col, (value - EXCEL_EPOCH).days, fmt)

    def text(sheet: Worksheet, row: int, col: int, value: str) -> object:
        return sheet.write_string(row, col, value) if value else None

    writers: dict[str, CellWriter] = {
        "date": excel_date(formats["date"]),
        "money": number(formats["money"]),
        "qty": number(formats["qty"]),
        "text": text,
    }
    return [writers[t] for t in types]


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
