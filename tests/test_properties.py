"""Property tests over the pure document builders (portal/documents.py).

For any generated POS transactions (with SST, discounts and partial refunds), payments (split
methods, cash with 5-sen rounding, refunds) and KOL settlements, what would be pushed — the lines
written to the xlsx and read back — adds up to the NS16 totals to the sen, every document number
is unique per counterparty, and refunds become credit notes / refund receipts that reference the
original. Rows are built in the shapes the builders read (see tests/test_documents.py).
"""
from __future__ import annotations

import io
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.aiaccount import SYNC_TYPE_KINDS, read_xlsx, write_xlsx
from portal.documents import (
    InvoiceRow,
    Mapping,
    ReceiptRow,
    Tally,
    build_bills,
    build_invoices,
    build_payments,
    build_receipts,
)
from portal.money import line_amount, line_tax, round_cash

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
M = Mapping()
MYT = timezone(timedelta(hours=8))
START = datetime(2026, 5, 1, tzinfo=MYT)
SEN = D("0.01")

money = st.integers(min_value=1, max_value=999_999).map(lambda sen: D(sen) / 100)  # 0.01 .. 9,999.99
rates = st.sampled_from([D("0"), D("6"), D("8"), D("10")])
members = st.one_of(st.none(), st.sampled_from(["Tan Mei Ling", "  Aina ", "李小龙", "Walk-in Customer"]))
moments = st.integers(min_value=0, max_value=60 * 24 * 30 - 1).map(lambda m: (START + timedelta(minutes=m))
                                                                  .astimezone(timezone.utc))


@st.composite
def items(draw):
    qty = D(draw(st.integers(min_value=1, max_value=50)))
    price = draw(money)
    discount = draw(st.integers(min_value=0, max_value=int(qty * price * 100))) / D(100)
    return qty, price, discount


@st.composite
def sales(draw):
    """NS16 POS transactions and refunds, totals computed as NS16 does (per line, half-up)."""
    count = draw(st.integers(min_value=1, max_value=12))
    transactions = []
    for n in range(1, count + 1):
        rate = draw(rates)
        refund_of = None
        if transactions and draw(st.booleans()) and draw(st.booleans()):
            refund_of = draw(st.sampled_from([t for t in transactions if t["original"] is None]))
        if refund_of:  # a partial refund: some of the original's items, fewer or equal quantities
            chosen = draw(st.lists(st.sampled_from(refund_of["items"]), min_size=1, max_size=3))
            lines = [(-D(draw(st.integers(min_value=1, max_value=int(qty)))), price, D("0"))
                     for qty, price, _discount in chosen]
            rate = refund_of["rate"]
        else:
            lines = draw(st.lists(items(), min_size=1, max_size=5))
        amounts = [line_amount(q, p, d) for q, p, d in lines]
        total = sum(amounts, D("0")) + sum((line_tax(a, rate) for a in amounts), D("0"))
        transactions.append({
            "id": n, "receipt": f"POS20260514{n:05d}", "items": lines, "rate": rate, "total": total,
            "member": draw(members), "at": draw(moments),
            "original": refund_of["receipt"] if refund_of else None, "refund_of": refund_of["id"] if refund_of else None,
        })
    return transactions


def invoice_rows(transactions):
    rows, item_id = [], 0
    for txn in transactions:
        for n, (qty, price, discount) in enumerate(txn["items"], start=1):
            item_id += 1
            rows.append(InvoiceRow(
                txn_id=txn["id"], receipt_no=txn["receipt"], created_at=txn["at"], member_name=txn["member"],
                status="paid", total=txn["total"], tax_amount=None, original_receipt_no=txn["original"],
                currency="MYR", sst_rate=txn["rate"], item_id=item_id, product_name=f"Product {n}", sku=f"SKU{n}",
                qty=qty, unit_price=price, discount=discount, line_total=line_amount(qty, price, discount)))
    return rows


def pushed(sync_type, documents):
    """The documents' lines as AiAccount receives them: written to the xlsx and read back."""
    kind = SYNC_TYPE_KINDS[sync_type]
    buffer = io.BytesIO()
    write_xlsx(kind, [line for document in documents for line in document], buffer)
    return read_xlsx(kind, buffer.getvalue())


def assert_numbers_unique_per_counterparty(documents, number, counterparty):
    keys = [(number(doc[0]), counterparty(doc[0])) for doc in documents]
    for doc in documents:  # one number and one counterparty per document
        assert len({(number(line), counterparty(line)) for line in doc}) == 1
    duplicates = [key for key, seen in Counter(keys).items() if seen > 1]
    assert not duplicates, duplicates


@SETTINGS
@given(sales())
def test_invoices_push_exactly_the_ns16_totals(transactions):
    tally = Tally()
    documents = list(build_invoices(invoice_rows(transactions), M, tally))
    assert tally.problems == [] and len(documents) == len(transactions)
    expected = sum((t["total"] for t in transactions), D("0"))
    lines = pushed("pos_invoice", documents)
    assert sum((line.line_amount + line.tax_amount for line in lines), D("0")) == expected == tally.total
    assert all(line.line_amount == line.line_amount.quantize(SEN) for line in lines)
    by_number = {t["receipt"]: t for t in transactions}
    for document in documents:
        txn = by_number[document[0].doc_no]
        assert sum((line.line_amount + line.tax_amount for line in document), D("0")) == txn["total"]
        if txn["original"]:
            assert {line.doc_type for line in document} == {"Credit Note"}
            assert {line.original_doc_no for line in document} == {txn["original"]}
            assert all(line.line_amount < 0 for line in document)
        else:
            assert {line.doc_type for line in document} == {"Invoice"}
    assert_numbers_unique_per_counterparty(documents, lambda line: line.doc_no, lambda line: line.customer)


METHODS = ("cash", "card", "tng", "grabpay", "duitnow")


@st.composite
def paid(draw):
    """Paid transactions with their payment lines: split methods, 5-sen cash rounding, refunds."""
    count = draw(st.integers(min_value=1, max_value=12))
    rows, expected, payment_id = [], [], 0
    for n in range(1, count + 1):
        refund = draw(st.booleans()) and draw(st.booleans())
        total = draw(money) + D("0.10")
        if refund:
            total = -total
            methods = [draw(st.sampled_from(METHODS[1:]))]
            parts = [total]
        else:
            methods = draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True))
            parts, left = [], total
            for method in methods[:-1]:
                share = draw(st.integers(min_value=10, max_value=max(10, int(left * 100) - 10 * len(methods))))
                share = min(D(share) / 100, left - D("0.10"))
                parts.append(share)
                left -= share
            parts.append(left)
            if any(part < D("0.10") for part in parts):
                methods, parts = [methods[0]], [total]
        txn = {"id": n, "receipt": f"POS20260514{n:05d}", "total": total, "at": draw(moments),
               "member": draw(members), "refund_of": 1000 + n if refund else None}
        for method, part in zip(methods, parts):
            payment_id += 1
            received = change = None
            amount = part
            if method == "cash":  # the customer pays the 5-sen rounded amount, maybe with change
                amount = round_cash(part)
                received = amount + D(draw(st.integers(min_value=0, max_value=5000))) / 100
                change = received - amount
            rows.append(ReceiptRow(
                txn_id=txn["id"], receipt_no=txn["receipt"], paid_at=txn["at"], member_name=txn["member"],
                total=total, refund_of_id=txn["refund_of"], currency="MYR", has_bad_items=False,
                payment_id=payment_id, method=method, amount=amount, amount_received=received,
                change_amount=change, reference_no=None if method == "cash" else f"REF{payment_id}"))
        expected.append(txn)
    return rows, expected


@SETTINGS
@given(paid())
def test_receipts_push_exactly_the_ns16_totals_with_cash_rounding(data):
    rows, transactions = data
    tally = Tally()
    documents = list(build_receipts(rows, M, tally))
    assert tally.problems == [] and len(documents) == len(transactions)
    lines = pushed("pos_receipt", documents)
    expected = sum((t["total"] for t in transactions), D("0"))
    assert sum((line.amount for line in lines), D("0")) == expected == tally.total
    by_number = {t["receipt"]: t for t in transactions}
    for document in documents:
        txn = by_number[document[0].invoice_no]
        assert sum((line.amount for line in document), D("0")) == txn["total"]
        rounding = [line for line in document if line.payment_method == "rounding"]
        assert len(rounding) <= 1 and all(abs(line.amount) <= D("0.02") for line in rounding)
        if txn["refund_of"]:
            assert {line.doc_type for line in document} == {"Refund"}
            assert document[0].receipt_no == f"RFND-{txn['receipt']}"
        else:
            assert {line.doc_type for line in document} == {"Receipt"}
            assert document[0].receipt_no == f"RCPT-{txn['receipt']}"
    assert_numbers_unique_per_counterparty(documents, lambda line: line.receipt_no, lambda line: line.customer)


@st.composite
def settlements(draw):
    kols = draw(st.lists(st.tuples(st.from_regex(r"K[0-9]{3}", fullmatch=True),
                                   st.sampled_from(["Farah Beauty", "Aina", "Farah Beauty ", "小美"])),
                         min_size=1, max_size=6, unique_by=lambda kol: kol[0]))
    periods = draw(st.lists(st.sampled_from(["2026-01", "2026-02", "2026-03", "2026-04"]), min_size=1, max_size=4,
                            unique=True))
    rows = []
    for code, name in kols:
        for period in periods:
            if not draw(st.booleans()):
                continue
            sales_amount = draw(money) * 10
            rate = D(draw(st.integers(min_value=1, max_value=3000))) / 100
            commission = (sales_amount * rate / 100).quantize(SEN)
            if commission <= 0:
                continue
            paid_at = draw(st.one_of(st.none(), moments))
            rows.append(SimpleNamespace(
                settlement_id=len(rows) + 1, period=period, product_sales=sales_amount, rate_snapshot=rate,
                commission=commission, settled_date=date(2026, 5, 3), kol_code=code, kol_name=name,
                paid_at=paid_at, payment_reference=f"IBG{len(rows)}" if paid_at else None))
    return rows


@SETTINGS
@given(settlements())
def test_kol_bills_and_payments_push_exactly_the_commissions(rows):
    tally = Tally()
    bills = list(build_bills(rows, M, tally))
    assert tally.problems == [] and len(bills) == len(rows)
    lines = pushed("kol_bill", bills)
    owed = sum((row.commission for row in rows), D("0"))
    assert sum((line.amount for line in lines), D("0")) == owed == tally.total
    assert_numbers_unique_per_counterparty(bills, lambda line: line.bill_no, lambda line: line.supplier)

    paid_rows = [row for row in rows if row.paid_at is not None]
    payment_tally = Tally()
    payments = list(build_payments(paid_rows, M, payment_tally))
    assert len(payments) == len(paid_rows)
    paid_lines = pushed("kol_payment", payments)
    assert sum((line.amount for line in paid_lines), D("0")) == sum((row.commission for row in paid_rows), D("0"))
    bill_numbers = {line.bill_no for line in lines}
    assert {line.bill_no for line in paid_lines} <= bill_numbers  # every payment settles a pushed bill
    assert_numbers_unique_per_counterparty(payments, lambda line: line.payment_no, lambda line: line.supplier)


@SETTINGS
@given(sales())
def test_a_receipt_exists_for_every_invoice_and_settles_it_exactly(transactions):
    """Invoices and receipts built from the same paid transactions reference each other one to one."""
    invoices = list(build_invoices(invoice_rows(transactions), M, Tally()))
    payment_rows = [ReceiptRow(
        txn_id=t["id"], receipt_no=t["receipt"], paid_at=t["at"], member_name=t["member"], total=t["total"],
        refund_of_id=t["refund_of"], currency="MYR", has_bad_items=False, payment_id=t["id"], method="card",
        amount=t["total"], amount_received=None, change_amount=None, reference_no="C") for t in transactions
        if t["total"] != 0]
    receipts = list(build_receipts(payment_rows, M, Tally()))
    invoice_totals = {doc[0].doc_no: sum((line.line_amount + line.tax_amount for line in doc), D("0"))
                      for doc in invoices}
    receipt_totals = {doc[0].invoice_no: sum((line.amount for line in doc), D("0")) for doc in receipts}
    assert receipt_totals == {number: total for number, total in invoice_totals.items() if total != 0}
