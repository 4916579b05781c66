"""The import templates and the xlsx writer/reader."""
from __future__ import annotations

import gc
import io
from datetime import date
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.aiaccount.templates import COLUMNS, KINDS, LINE_TYPES, SYNC_TYPE_KINDS, InvoiceLine
from portal.aiaccount.xlsx import read_xlsx, write_xlsx
from portal.models import SYNC_TYPES
from tests.plugin_simulator import bill_line, invoice_line, payment_line, receipt_line, xlsx

SAMPLES = {
    "sales-invoice": invoice_line(),
    "sales-receipt": receipt_line(),
    "expense-bill": bill_line(),
    "expense-payment": payment_line(),
}


def test_templates_are_consistent() -> None:
    assert set(KINDS) == set(COLUMNS) == set(LINE_TYPES)
    for kind in KINDS:
        assert len(LINE_TYPES[kind]._fields) == len(COLUMNS[kind])
        assert len(set(COLUMNS[kind])) == len(COLUMNS[kind])
    assert set(SYNC_TYPE_KINDS) == set(SYNC_TYPES)
    assert sorted(SYNC_TYPE_KINDS.values()) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_every_kind(kind: str) -> None:
    lines = [SAMPLES[kind], SAMPLES[kind]]
    buffer = io.BytesIO()
    assert write_xlsx(kind, lines, buffer) == 2
    assert read_xlsx(kind, buffer.getvalue()) == lines


def test_cells_are_typed_and_never_formulas() -> None:
    line = invoice_line(description="=cmd|' /C calc'!A0", reference="+SUM(A1)",
                        qty=Decimal("1.5"), unit_price=Decimal("3.33"),
                        line_amount=Decimal("5.00"))
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx("sales-invoice", [line]))).active
    assert [c.value for c in sheet[1]] == COLUMNS["sales-invoice"]
    cells = dict(zip(COLUMNS["sales-invoice"], sheet[2], strict=True))
    assert cells["Doc Date"].is_date and cells["Doc Date"].number_format == "yyyy-mm-dd"
    assert cells["Doc Date"].value.date() == line.doc_date
    assert (cells["Unit Price"].value, cells["Unit Price"].number_format) == (3.33, "0.00")
    assert (cells["Qty"].value, cells["Qty"].number_format) == (1.5, "0.000")
    assert cells["Description"].data_type == "s"
    assert cells["Description"].value == "=cmd|' /C calc'!A0"
    assert cells["Reference"].value == "+SUM(A1)"
    assert cells["Account"].value == "40000"  # text, not a number


def test_no_lines_is_a_header_only_file() -> None:
    buffer = io.BytesIO()
    assert write_xlsx("expense-bill", [], buffer) == 0
    assert read_xlsx("expense-bill", buffer.getvalue()) == []


def test_read_rejects_other_templates() -> None:
    with pytest.raises(ValueError, match="missing columns: Doc No"):
        read_xlsx("sales-invoice", xlsx("expense-bill", [bill_line()]))
    with pytest.raises(ValueError, match="not a readable xlsx"):
        read_xlsx("sales-invoice", b"plain text")


texts = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
money = st.decimals(min_value=-10**9, max_value=10**9, places=2)


@settings(max_examples=60, deadline=None)
@given(description=texts, customer=texts.filter(str.strip), unit_price=money,
       qty=st.decimals(min_value=-10**6, max_value=10**6, places=3),
       day=st.dates(date(1990, 1, 1), date(2099, 12, 31)))
def test_round_trip_preserves_values(description: str, customer: str, unit_price: Decimal,
                                     qty: Decimal, day: date) -> None:
    line = invoice_line(description=description, customer=customer, unit_price=unit_price,
                        qty=qty, doc_date=day)
    assert read_xlsx("sales-invoice", xlsx("sales-invoice", [line])) == [line]


def test_writing_leaves_no_cyclic_garbage() -> None:
    """The workbook and its cells are freed by reference counting when write_xlsx returns, not
    left for a full garbage collection (a 5,000-document chunk is ~200,000 cell objects). Only
    xlsxwriter's objects are looked at: other threads of the test process may make garbage too."""
    lines: list[InvoiceLine] = [invoice_line(doc_no=f"POS{i:013d}") for i in range(200)]
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert write_xlsx("sales-invoice", lines, io.BytesIO()) == 200
        gc.collect()
        left = [type(o).__module__ for o in gc.garbage if type(o).__module__.startswith("xlsxwriter")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
