"""The pure builders: NS16 rows in, template lines out (no database, no HTTP)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D
import pytest

from portal.documents import (
    BillRow,
    InvoiceRow,
    Mapping,
    PaymentRow,
    ReceiptRow,
    Tally,
    build_bills,
    build_invoices,
    build_payments,
    build_receipts,
)
from portal.preflight import preflight

MYT = timezone(timedelta(hours=8))
M = Mapping()


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=MYT).astimezone(timezone.utc)


def item_row(txn_id=1, receipt="POS2026051400001", qty="1", price="10.00", discount="0", total=None,
             created=None, member=None, original=None, rate="0", currency="MYR", item_id=1, line_total=None):
    qty_d, price_d, disc_d = D(qty), D(price), D(discount)
    amount = (qty_d * price_d - disc_d).quantize(D("0.01"))
    return InvoiceRow(txn_id=txn_id, receipt_no=receipt, created_at=created or at(14, 12), member_name=member,
                      status="paid", total=D(total) if total else None, tax_amount=D("0"),
                      original_receipt_no=original, currency=currency, sst_rate=D(rate), item_id=item_id,
                      product_name="Lipstick", sku="LIP-01", qty=qty_d, unit_price=price_d, discount=disc_d,
                      line_total=D(line_total) if line_total else amount)


def test_invoice_per_transaction_with_per_line_tax_and_myt_date():
    rows = [item_row(qty="1", price="5.55", discount="0.50", rate="10", total="11.12", created=at(14, 23, 30)),
            item_row(qty="1", price="5.05", rate="10", total="11.12", item_id=2, created=at(14, 23, 30))]
    tally = Tally()
    [doc] = list(build_invoices(rows, M, tally))
    assert [line.tax_amount for line in doc] == [D("0.51"), D("0.51")]
    assert {line.tax_code for line in doc} == {"MY-SALES10"}
    assert doc[0].doc_date == date(2026, 5, 14)  # 23:30 MYT is still the 14th (15:30 UTC)
    assert doc[0].customer == "Walk-in Customer" and doc[0].doc_type == "Invoice"
    assert tally.total == D("11.12") and tally.documents == 1 and tally.lines == 2


def test_refund_becomes_a_credit_note_referencing_the_original():
    rows = [item_row(receipt="POS2026051600002", qty="-1", price="10.00", total="-10.00",
                     original="POS2026051400001", member="Tan Mei Ling")]
    [doc] = list(build_invoices(rows, M, Tally()))
    assert doc[0].doc_type == "Credit Note" and doc[0].original_doc_no == "POS2026051400001"
    assert doc[0].line_amount == D("-10.00") and doc[0].customer == "Tan Mei Ling"


def test_bad_source_rows_are_named_by_receipt_and_the_rest_is_built():
    rows = [item_row(txn_id=1, receipt="POS2026051400001", qty="-2", total="-20.00"),
            item_row(txn_id=2, receipt="POS2026051400002", total="10.00"),
            item_row(txn_id=3, receipt="POS2026051400003")._replace(unit_price=None)]
    tally = Tally()
    docs = list(build_invoices(rows, M, tally))
    assert [d[0].doc_no for d in docs] == ["POS2026051400002"]
    assert [p.reference for p in tally.problems] == ["POS2026051400001", "POS2026051400003"]
    assert "quantity -2" in tally.problems[0].message


def _with(row, **changes):
    return row._replace(**changes)


@pytest.mark.parametrize("rows, reason", [
    ([_with(item_row(), item_id=None, qty=None, unit_price=None, line_total=None)], "transaction has no items"),
    ([_with(item_row(), qty=None)], "'Lipstick' has no quantity, price or line total"),
    ([_with(item_row(), line_total=None)], "'Lipstick' has no quantity, price or line total"),
    ([item_row(price="-1.00", total="-1.00")], "'Lipstick' has a negative price"),
    ([item_row(qty="0", total="0.00")], "'Lipstick' has quantity 0 on a sale"),
    ([item_row(qty="1", total="10.00", original="POS2026051400009")], "refund item 'Lipstick' is not negative"),
    ([item_row(total="10.00", line_total="9.99")], "qty × price − discount ≠ line total 9.99"),
    ([item_row(total="10.00"), item_row(total="10.00", item_id=2, price="-2.00")], "has a negative price"),
    ([item_row(total="10.01")], "line totals add up to 10.00, NS16 total is 10.01"),
])
def test_every_reason_an_invoice_is_skipped(rows, reason):
    tally = Tally()
    assert list(build_invoices(rows + [item_row(txn_id=2, receipt="POS2026051400002", total="10.00")], M, tally)) \
        == list(build_invoices([item_row(txn_id=2, receipt="POS2026051400002", total="10.00")], M, Tally()))
    [problem] = tally.problems
    assert problem.reference == "POS2026051400001" and reason in problem.message
    assert tally.documents == 1 and tally.total == D("10.00")


def pay_row(method, amount, received=None, change=None, total="11.12", refund_of=None, payment_id=1, ref=None):
    return ReceiptRow(txn_id=1, receipt_no="POS2026051400001", paid_at=at(14, 12), member_name=None,
                      total=D(total), refund_of_id=refund_of, currency="MYR", has_bad_items=False,
                      payment_id=payment_id, method=method, amount=D(amount),
                      amount_received=D(received) if received else None,
                      change_amount=D(change) if change else None, reference_no=ref)


def test_receipt_counts_cash_kept_and_posts_rounding_line():
    tally = Tally()
    [doc] = list(build_receipts([pay_row("cash", "11.10", "20.00", "8.90")], M, tally))
    assert [(line.payment_method, line.account, line.amount) for line in doc] == [
        ("cash", "12100", D("11.10")), ("rounding", "40000", D("0.02"))]
    assert doc[0].receipt_no == "RCPT-POS2026051400001" and doc[0].invoice_no == "POS2026051400001"
    assert sum(line.amount for line in doc) == D("11.12")
    assert ("40000", "rounding") in tally.accounts


def test_multi_method_receipt_has_a_line_per_method_with_references():
    rows = [pay_row("tng", "60.00", total="110.00", ref="TNG1"), pay_row("card", "50.00", total="110.00",
                                                                         payment_id=2, ref="C1")]
    [doc] = list(build_receipts(rows, M, Tally()))
    assert [(line.payment_method, line.account, line.reference) for line in doc] == [
        ("tng", "12200", "TNG1"), ("card", "12500", "C1")]


def test_refund_receipt_is_negative_and_non_cash_mismatch_is_a_problem():
    [doc] = list(build_receipts([pay_row("card", "-10.00", total="-10.00", refund_of=7)], M, Tally()))
    assert doc[0].doc_type == "Refund" and doc[0].receipt_no == "RFND-POS2026051400001"
    assert doc[0].amount == D("-10.00")
    tally = Tally()
    assert list(build_receipts([pay_row("card", "11.00")], M, tally)) == []
    assert "payments add up to 11.00" in tally.problems[0].message


@pytest.mark.parametrize("rows, reason", [
    ([_with(pay_row("card", "11.12"), has_bad_items=True)], "its invoice has invalid items"),
    ([_with(pay_row("card", "11.12"), payment_id=None)], "paid transaction has no payment lines"),
    ([pay_row("cheque", "11.12"), _with(pay_row("bitcoin", "0.12"), payment_id=2)],
     "unknown payment method bitcoin, cheque"),
    ([pay_row("card", "0.00"), pay_row("cash", "5.00", "5.00", "5.00", payment_id=2)], "nothing was paid"),
    ([pay_row("card", "11.10")], "payments add up to 11.10, the total is 11.12"),  # rounding needs cash
    ([pay_row("cash", "11.00", "20.00", "9.00")], "payments add up to 11.00"),  # more than 2 sen off
])
def test_every_reason_a_receipt_is_skipped(rows, reason):
    tally = Tally()
    assert list(build_receipts(rows, M, tally)) == []
    [problem] = tally.problems
    assert problem.reference == "POS2026051400001" and reason in problem.message
    assert tally.documents == 0 and tally.accounts == set()


def test_a_cash_payment_without_received_and_change_still_allows_rounding():
    [doc] = list(build_receipts([pay_row("cash", "11.10"), _with(pay_row("card", "0.00"), payment_id=2)], M, Tally()))
    assert [(line.payment_method, line.amount, line.description) for line in doc] == [
        ("cash", D("11.10"), "Cash"), ("rounding", D("0.02"), "Cash rounding (5 sen)")]


def settlement(period="2026-04", sales="12345.60", rate="10.00", commission="1234.56"):
    return BillRow(settlement_id=1, period=period, product_sales=D(sales), rate_snapshot=D(rate),
                   commission=D(commission), settled_date=date(2026, 5, 3), kol_code="K001", kol_name="Farah Beauty")


def paid_settlement(paid_at, period="2026-04", commission="1234.56"):
    return PaymentRow(settlement_id=1, period=period, commission=D(commission), paid_at=paid_at,
                      payment_reference="IBG1", kol_code="K001", kol_name="Farah Beauty")


def test_kol_bill_and_payment():
    [bill] = list(build_bills([settlement()], M, Tally()))
    assert bill[0].bill_no == "KOL-2026-04-K001" and bill[0].supplier == "Farah Beauty"
    assert bill[0].description == "Commission 2026-04: 10% of MYR 12,345.60"
    assert (bill[0].account, bill[0].tax_code, bill[0].amount) == ("61001", "NT", D("1234.56"))
    [pay] = list(build_payments([paid_settlement(at(6, 23, 59))], M, Tally()))
    assert pay[0].bill_no == "KOL-2026-04-K001" and pay[0].account == "12000"
    assert pay[0].payment_date == date(2026, 5, 6) and pay[0].reference == "IBG1"


@pytest.mark.parametrize("sync_type", ["pos_invoice", "pos_receipt", "kol_bill", "kol_payment"])
def test_each_query_selects_exactly_its_row_type_in_order(sync_type):
    """The builders read rows by position: a column added, dropped or moved in sources.py
    without the row type (or the other way round) fails here, not in a customer's book."""
    from portal.sources import QUERIES, ROW_TYPES

    query = QUERIES[sync_type](1, date(2026, 5, 1), date(2026, 5, 31))
    assert tuple(query.selected_columns.keys()) == ROW_TYPES[sync_type]._fields


def test_preflight_names_what_to_fix():
    from portal.aiaccount import Account, AiAccountError, Company

    company = Company(name="X", home_currency="MYR", currencies=frozenset({"MYR"}), tax_codes={"NT": D("0")},
                      accounts={"40000": Account("40000", "Sales", True, False, False, False)},
                      incorporation_date=date(2020, 1, 1), locked_until=date(2026, 4, 30), plan="trial",
                      quota_used=99, quota_limit=100, import_history_url="http://x/")
    tally = Tally()
    list(build_invoices([item_row(rate="10", total="11.00")], M, tally))
    with pytest.raises(AiAccountError) as missing:
        preflight(tally, company)
    assert missing.value.code == "tax_code_missing" and "MY-SALES10" in missing.value.fix_en
    tally.tax_codes = {"NT"}
    tally.first_date = date(2026, 4, 30)
    with pytest.raises(AiAccountError) as locked:
        preflight(tally, company)
    assert locked.value.code == "period_locked" and "2026-04-30" in locked.value.fix_en
    tally.first_date = date(2026, 5, 14)
    tally.documents = 2
    with pytest.raises(AiAccountError) as quota:
        preflight(tally, company)
    assert quota.value.code == "quota_exceeded"
    preflight(tally, company, fresh_documents=0)  # a re-push uses no quota: AiAccount counts exactly


def test_tally_keeps_currencies_apart():
    tally = Tally()
    rows = [item_row(txn_id=1, total="10.00"),
            item_row(txn_id=2, receipt="POS2026051400002", currency="SGD", price="4.00", total="4.00")]
    assert len(list(build_invoices(rows, M, tally))) == 2
    assert tally.totals == {"MYR": D("10.00"), "SGD": D("4.00")} and tally.single_currency_total is None
    single = Tally()
    list(build_invoices(rows[:1], M, single))
    assert single.single_currency_total == D("10.00")
