"""Reading and validating an import file (docs/aiaccount-api.md §3, §6).

``read_rows`` turns the bytes into cell rows (python-calamine); ``validate`` turns the rows into
documents or row errors, checking every row against the company's master data and the store.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import python_calamine

from simulator.company import Company, normalize_name

MASTER_DATA_CODES = frozenset(
    {"tax_code_missing", "currency_not_enabled", "account_missing", "period_locked",
     "before_incorporation"}
)
MAX_REPORTED_ERRORS = 1000
MAX_AMOUNT = Decimal("1e12")
CENT, MILLI = Decimal("0.01"), Decimal("0.001")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ROUNDING = "rounding"


@dataclass(frozen=True)
class Column:
    header: str
    type: str = "text"  # text | date | money | qty
    required: bool = True
    max_len: int = 100


@dataclass(frozen=True)
class Template:
    kind: str
    role: str  # the counterparty's role: customer | supplier
    number: str
    date: str
    counterparty: str
    usage: str  # the account usage every line needs
    columns: tuple[Column, ...]
    doc_types: tuple[str, ...] = ()  # allowed "Doc Type" values; () = no Doc Type column
    doc_type: str = ""  # the type of every document when there is no Doc Type column
    reference: str = ""  # the column naming a settled / credited document
    reference_kind: str = ""
    total: tuple[str, ...] = ("Amount",)  # the columns summed into the document total

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]


def _text(header: str, required: bool = True, max_len: int = 100) -> Column:
    return Column(header, "text", required, max_len)


TEMPLATES: dict[str, Template] = {
    t.kind: t
    for t in (
        Template(
            "sales-invoice", "customer", "Doc No", "Doc Date", "Customer", "sales",
            (_text("Doc No"), Column("Doc Date", "date"), _text("Doc Type"),
             _text("Original Doc No", required=False), _text("Customer"), _text("Currency"),
             _text("Description", False, 500), Column("Qty", "qty"), Column("Unit Price", "money"),
             Column("Discount", "money", required=False), _text("Tax Code"),
             Column("Tax Amount", "money", required=False), _text("Account"),
             Column("Line Amount", "money"), _text("Reference", False, 500)),
            doc_types=("Invoice", "Credit Note"), reference="Original Doc No",
            reference_kind="sales-invoice", total=("Line Amount", "Tax Amount"),
        ),
        Template(
            "sales-receipt", "customer", "Receipt No", "Receipt Date", "Customer", "receipt",
            (_text("Receipt No"), Column("Receipt Date", "date"), _text("Doc Type"),
             _text("Customer"), _text("Currency"), _text("Invoice No"), _text("Payment Method"),
             _text("Account"), Column("Amount", "money"), _text("Reference", False, 500),
             _text("Description", False, 500)),
            doc_types=("Receipt", "Refund"), reference="Invoice No",
            reference_kind="sales-invoice",
        ),
        Template(
            "expense-bill", "supplier", "Bill No", "Bill Date", "Supplier", "expense",
            (_text("Bill No"), Column("Bill Date", "date"), _text("Supplier"), _text("Currency"),
             _text("Description", False, 500), _text("Account"), _text("Tax Code"),
             Column("Amount", "money"), _text("Reference", False, 500)),
            doc_type="Bill",
        ),
        Template(
            "expense-payment", "supplier", "Payment No", "Payment Date", "Supplier", "payment",
            (_text("Payment No"), Column("Payment Date", "date"), _text("Supplier"),
             _text("Currency"), _text("Bill No"), _text("Account"), Column("Amount", "money"),
             _text("Reference", False, 500), _text("Description", False, 500)),
            reference="Bill No", reference_kind="expense-bill", doc_type="Payment",
        ),
    )
}


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    code: str
    message: str
    value: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "code": self.code,
                "message": self.message, "value": self.value}


class FileRejected(Exception):
    """The whole file is refused (400 / 422) before or while validating rows."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = [] if details is None else details


@dataclass
class Line:
    row: int
    values: dict[str, Any]  # header -> str | date | Decimal | None (empty / invalid)


@dataclass
class Document:
    number: str
    counterparty: str
    doc_type: str
    date: date
    currency: str
    first_row: int
    lines: list[Line] = field(default_factory=list)
    _canonical: list[dict[str, str]] | None = field(default=None, repr=False, compare=False)

    @property
    def identity(self) -> tuple[str, str]:
        return self.number, normalize_name(self.counterparty)

    def total(self, template: Template) -> Decimal:
        return sum(
            (line.values[h] or Decimal(0) for line in self.lines for h in template.total),
            Decimal(0),
        )

    def canonical_lines(self, template: Template) -> list[dict[str, str]]:
        """Computed once per document (posting needs them for the hash and the stored copy)."""
        if self._canonical is None:
            self._canonical = [{c.header: _canonical(line.values[c.header], c) for c in template.columns}
                               for line in self.lines]
        return self._canonical

    def content_hash(self, template: Template) -> str:
        rows = sorted(json.dumps(line, sort_keys=True) for line in self.canonical_lines(template))
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()


_NO_DATA = RowError(2, "", "missing_value", "the file has no data rows")

# (kind, [(number, counterparty_norm), ...]) -> the identities stored, asked once per file
Lookup = Callable[[str, Sequence[tuple[str, str]]], set[tuple[str, str]]]


def read_rows(data: bytes) -> list[list[Any]]:
    """Cells of the first sheet, row 1 first; ``FileRejected`` if the bytes are not a workbook."""
    if not data:
        raise FileRejected(422, "validation_failed", "the file is empty", [_NO_DATA.to_json()])
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        return workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except python_calamine.CalamineError as exc:
        raise FileRejected(400, "invalid_file", f"not a readable xlsx file ({exc})") from exc


def validate(kind: str, rows: list[list[Any]], company: Company,
             lookup: Lookup) -> tuple[int, list[Document], list[RowError]]:
    """(line count, documents, row errors) of a file; documents are usable only without errors."""
    template = TEMPLATES[kind]
    if not any(cell != "" for row in rows for cell in row):
        raise FileRejected(422, "validation_failed", "the file is empty", [_NO_DATA.to_json()])
    positions = _header_positions(template, rows[0])
    plan = [(column, positions[column.header]) for column in template.columns]
    master = _Master(company)
    lines: list[Line] = []
    errors: list[RowError] = []
    for index, cells in enumerate(rows[1:], start=2):
        if all(cell == "" for cell in cells):
            continue
        values: dict[str, Any] = {}
        width = len(cells)
        for column, position in plan:
            value, error = _convert(column, cells[position] if position < width else "", index)
            values[column.header] = value
            if error:
                errors.append(error)
        line = Line(index, values)
        errors.extend(_check_line(template, line, company, master))
        lines.append(line)
    if not lines:
        return 0, [], [_NO_DATA]
    documents = _group(template, lines, errors)
    errors.extend(_check_references(template, documents, lookup))
    errors.sort(key=lambda e: e.row)
    return len(lines), list(documents.values()), errors


def error_summary(errors: list[RowError]) -> tuple[str, str]:
    """(top-level code, message) for a list of row errors (docs §3.2)."""
    codes = {e.code for e in errors}
    code = errors[0].code if len(codes) == 1 and codes <= MASTER_DATA_CODES else "validation_failed"
    first = errors[0]
    where = f"row {first.row}, {first.column}" if first.column else f"row {first.row}"
    count = f"{len(errors)} row errors" if len(errors) > 1 else "1 row error"
    return code, f"{count}; first: {where}: {first.message}"


def _header_positions(template: Template, header: list[Any]) -> dict[str, int]:
    names = [str(cell).strip() for cell in header]
    missing = [h for h in template.headers if h not in names]
    if missing:
        raise FileRejected(422, "missing_columns", "missing columns: " + ", ".join(missing),
                           [{"column": h} for h in missing])
    return {h: names.index(h) for h in template.headers}


class _Master:
    """The company's master data as sets, built once per file (not once per line)."""

    def __init__(self, company: Company) -> None:
        self.currencies = frozenset(company.currencies)
        self.tax_codes = company.enabled_tax_codes
        self.usage: dict[str, frozenset[str] | None] = {}
        self.company = company

    def account_usage(self, number: str) -> frozenset[str] | None:
        if number not in self.usage:
            self.usage[number] = self.company.account_usage(number)
        return self.usage[number]


def _convert(column: Column, cell: Any, row: int) -> tuple[Any, RowError | None]:
    if column.type == "text" and cell.__class__ is str:  # the common case, checked first
        text = cell.strip()
        if not text:
            if column.required:
                return None, RowError(row, column.header, "missing_value", "a value is required")
            return "", None
        if len(text) > column.max_len:
            return _invalid(column, cell, row, f"longer than {column.max_len} characters")
        return text, None
    return _convert_other(column, cell, row)


def _invalid(column: Column, cell: Any, row: int, message: str) -> tuple[None, RowError]:
    return None, RowError(row, column.header, "invalid_value", message, _show(cell))


def _convert_other(column: Column, cell: Any, row: int) -> tuple[Any, RowError | None]:
    def invalid(message: str) -> tuple[None, RowError]:
        return _invalid(column, cell, row, message)

    if cell == "" or (isinstance(cell, str) and not cell.strip()):
        if column.required:
            return None, RowError(row, column.header, "missing_value", "a value is required")
        return (None if column.type != "text" else ""), None
    if isinstance(cell, bool):
        return invalid("a TRUE/FALSE cell is not allowed here")
    if column.type == "text":
        if isinstance(cell, float) and cell.is_integer():
            cell = int(cell)
        if isinstance(cell, (date, time)):
            return invalid("expected text, got a date")
        text = str(cell).strip()
        if len(text) > column.max_len:
            return invalid(f"longer than {column.max_len} characters")
        return text, None
    if column.type == "date":
        if isinstance(cell, datetime):
            return (cell.date(), None) if cell.time() == time() else invalid(
                "expected a date without a time")
        if isinstance(cell, date):
            return cell, None
        if isinstance(cell, str) and ISO_DATE.fullmatch(cell.strip()):
            try:
                return date.fromisoformat(cell.strip()), None
            except ValueError:
                pass
        return invalid("expected a date cell or text YYYY-MM-DD")
    if isinstance(cell, (int, float, str)):
        try:
            number = Decimal(repr(cell) if isinstance(cell, float) else str(cell).strip())
        except InvalidOperation:
            return invalid("expected a number")
        if number.is_finite() and abs(number) < MAX_AMOUNT:
            return number.quantize(MILLI if column.type == "qty" else CENT, ROUND_HALF_UP), None
    return invalid("expected a number")


def _check_line(template: Template, line: Line, company: Company,
                master: _Master | None = None) -> list[RowError]:
    master = master or _Master(company)
    errors: list[RowError] = []
    v = line.values

    def error(column: str, code: str, message: str) -> None:
        errors.append(RowError(line.row, column, code, message, _show(v.get(column))))

    if template.doc_types and v["Doc Type"] and v["Doc Type"] not in template.doc_types:
        error("Doc Type", "invalid_value", "must be " + " or ".join(template.doc_types))
    if v["Currency"] and v["Currency"] not in master.currencies:
        error("Currency", "currency_not_enabled", f"currency {v['Currency']} is not enabled")
    if v.get("Tax Code") and v["Tax Code"] not in master.tax_codes:
        error("Tax Code", "tax_code_missing", f"tax code {v['Tax Code']} is not set up")
    if v["Account"]:
        usage = master.account_usage(v["Account"])
        allowed = {template.usage}
        if _is_rounding(v):
            allowed |= {"sales", "expense"}
        if usage is None:
            error("Account", "account_missing", f"account {v['Account']} does not exist")
        elif not usage & allowed:
            error("Account", "account_missing",
                  f"account {v['Account']} is not enabled for {template.usage}")
    day = v[template.date]
    if day and day < company.incorporation_date:
        error(template.date, "before_incorporation",
              f"{day} is before the incorporation date {company.incorporation_date}")
    elif day and company.locked_until and day <= company.locked_until:
        error(template.date, "period_locked",
              f"{day} is in a period locked until {company.locked_until}")
    for column, message in _sign_problems(template.kind, v):
        error(column, "invalid_value", message)
    return errors


def _sign_problems(kind: str, v: dict[str, Any]) -> list[tuple[str, str]]:
    if kind == "sales-invoice":
        qty, price, line_amount = v["Qty"], v["Unit Price"], v["Line Amount"]
        discount = v["Discount"] or Decimal(0)
        problems = []
        if v["Doc Type"] == "Credit Note":
            if not v["Original Doc No"]:
                problems.append(("Original Doc No", "a credit note names the invoice it credits"))
            if qty == 0:
                problems.append(("Qty", "must not be 0"))
            if line_amount is not None and line_amount > 0:
                problems.append(("Line Amount", "a credit note line must not be positive"))
        elif v["Doc Type"] == "Invoice":
            for column, value in (("Qty", qty), ("Unit Price", price), ("Discount", discount),
                                  ("Line Amount", line_amount)):
                if value is not None and (value < 0 or (column == "Qty" and value == 0)):
                    problems.append((column, "must be positive" if column == "Qty"
                                     else "must not be negative"))
        if None not in (qty, price, line_amount):
            expected = (qty * price - discount).quantize(CENT, ROUND_HALF_UP)
            if expected != line_amount:
                problems.append(
                    ("Line Amount", f"expected {expected} (Qty × Unit Price − Discount)"))
        return problems
    amount = v["Amount"]
    if amount is None:
        return []
    if kind == "sales-receipt" and _is_rounding(v):
        return [("Amount", "must not be 0")] if amount == 0 else []
    if kind == "sales-receipt" and v["Doc Type"] == "Refund":
        return [] if amount < 0 else [("Amount", "a refund line must be negative")]
    return [] if amount > 0 else [("Amount", "must be positive")]


def _group(template: Template, lines: list[Line], errors: list[RowError]) -> dict[str, Document]:
    """Documents by number; lines that disagree with their document's first line are errors."""
    documents: dict[str, Document] = {}
    agreeing = [template.date, template.counterparty, "Currency"]
    agreeing += ["Doc Type"] if template.doc_types else []
    agreeing += ["Original Doc No"] if template.kind == "sales-invoice" else []
    for line in lines:
        number = line.values[template.number]
        if not number:
            continue
        doc = documents.get(number)
        if doc is None:
            documents[number] = Document(
                number, line.values[template.counterparty] or "",
                line.values.get("Doc Type") or template.doc_type, line.values[template.date],
                line.values["Currency"] or "", line.row, [line])
            continue
        first = doc.lines[0].values
        for column in agreeing:
            mine, theirs = line.values[column], first[column]
            if column == template.counterparty and mine is not None and theirs is not None:
                mine, theirs = normalize_name(mine), normalize_name(theirs)
            if mine is not None and theirs is not None and mine != theirs:
                errors.append(RowError(
                    line.row, column, "inconsistent_document",
                    f"{template.number} {number} has {_show(first[column])} in row {doc.first_row}",
                    _show(line.values[column])))
        doc.lines.append(line)
    return documents


def _check_references(template: Template, documents: dict[str, Document],
                      lookup: Lookup) -> list[RowError]:
    if not template.reference:
        return []
    in_file = {d.identity for d in documents.values() if d.doc_type == "Invoice"} \
        if template.kind == "sales-invoice" else set()
    references = []  # (line, number, counterparty, identity)
    for doc in documents.values():
        if not doc.counterparty:
            continue
        counterparty_norm = normalize_name(doc.counterparty)
        for line in doc.lines:
            number = line.values[template.reference]
            if number:
                references.append((line, number, doc.counterparty, (number, counterparty_norm)))
    asked = sorted({identity for *_, identity in references if identity not in in_file})
    known = in_file | (lookup(template.reference_kind, asked) if asked else set())
    return [RowError(line.row, template.reference, "reference_not_found",
                     f"no {template.reference_kind} {number} for {counterparty}", number)
            for line, number, counterparty, identity in references if identity not in known]


def _is_rounding(values: dict[str, Any]) -> bool:
    return (values.get("Payment Method") or "").casefold() == ROUNDING


def _canonical(value: Any, column: Column) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.3f}" if column.type == "qty" else f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return "" if value is None else str(value)
