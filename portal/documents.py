"""Document builders: pure functions from NS16 source rows to AiAccount template lines.

No I/O here. Each builder takes the rows of one sync type (sources.py, in order), the blogger's
mapping (tax codes, accounts, walk-in customer) and a ``Tally`` it fills while it yields one
document (a list of lines) at a time, so a sync streams whatever its size. A source row NS16
should never have produced is skipped and named in ``tally.problems`` by its receipt number;
the rest of the range is still built.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple, Optional

from .aiaccount.templates import (
    DOC_TYPE_CREDIT_NOTE,
    DOC_TYPE_INVOICE,
    DOC_TYPE_RECEIPT,
    DOC_TYPE_REFUND,
    PAYMENT_METHOD_ROUNDING,
    BillLine,
    InvoiceLine,
    PaymentLine,
    ReceiptLine,
)
from .money import SEN, ZERO
from .timeutil import myt_date

HUNDRED = Decimal(100)
# Malaysia's 5-sen rounding moves a cash payment by at most 2 sen.
MAX_CASH_ROUNDING = Decimal("0.02")
METHOD_LABELS = {"cash": "Cash", "card": "Card", "tng": "Touch 'n Go eWallet", "grabpay": "GrabPay",
                 "duitnow": "DuitNow QR"}


@dataclass(frozen=True)
class Mapping:
    """A blogger's AiAccount settings, as the builders need them."""

    currency: str = "MYR"
    tax_code_none: str = "NT"
    tax_code_sst: str = "MY-SALES10"
    sales_account: str = "40000"
    bank_account: str = "12000"
    expense_account: str = "61001"
    rounding_account: str = "40000"
    payment_accounts: dict[str, str] = field(default_factory=lambda: {
        "cash": "12100", "card": "12500", "tng": "12200", "grabpay": "12300", "duitnow": "12400"})
    walk_in_customer: str = "Walk-in Customer"

    @classmethod
    def from_settings(cls, settings: Any) -> "Mapping":
        return cls(
            currency=settings.currency, tax_code_none=settings.tax_code_none, tax_code_sst=settings.tax_code_sst,
            sales_account=settings.sales_account, bank_account=settings.bank_account,
            expense_account=settings.expense_account, rounding_account=settings.rounding_account,
            payment_accounts={m: settings.payment_account(m) for m in METHOD_LABELS},
            walk_in_customer=settings.walk_in_customer,
        )


def N_(text: str) -> str:
    """Marks a text for translation without translating it here (the builders are pure; the pages
    translate with ``problem_text``). Babel extracts ``N_`` by default."""
    return text


# Why a source row gives no document: code → English text with %(name)s placeholders. Stored with
# the run as code + params, so each page shows it in the reader's language.
PROBLEM_TEXTS = {
    "no_items": N_("transaction has no items"),
    "item_incomplete": N_("item %(product)s has no quantity, price or line total"),
    "item_negative_price": N_("item %(product)s has a negative price"),
    "refund_item_positive": N_("refund item %(product)s is not negative"),
    "item_quantity_on_sale": N_("item %(product)s has quantity %(qty)s on a sale"),
    "item_amount_mismatch": N_("item %(product)s: qty × price − discount ≠ line total %(line_total)s"),
    "invoice_total_mismatch": N_("line totals add up to %(total)s, NS16 total is %(ns16_total)s"),
    "receipt_invoice_invalid": N_("its invoice has invalid items, so there is no invoice to settle"),
    "receipt_no_payments": N_("paid transaction has no payment lines"),
    "receipt_unknown_method": N_("unknown payment method %(methods)s"),
    "receipt_nothing_paid": N_("nothing was paid"),
    "receipt_total_mismatch": N_("payments add up to %(paid)s, the total is %(total)s"),
    "bill_nothing_owed": N_("commission is %(commission)s; nothing is owed"),
    "payment_nothing_paid": N_("commission is %(commission)s; nothing was paid"),
}


@dataclass(frozen=True)
class Problem:
    reference: str  # receipt number or settlement
    message: str  # in English, for logs and the CLI
    code: str = ""  # a PROBLEM_TEXTS key
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, reference: str, code: str, **params: object) -> "Problem":
        values = {name: str(value) for name, value in params.items()}
        return cls(reference, PROBLEM_TEXTS[code] % values, code, values)


@dataclass
class Tally:
    """What a build produced: counts and totals for the run, and the master data it needs.
    ``total`` adds every document; ``totals`` keeps each currency apart (a blogger may have a MYR
    and an SGD store), and only those are shown to people."""

    documents: int = 0
    lines: int = 0
    total: Decimal = ZERO
    totals: dict[str, Decimal] = field(default_factory=dict)
    first_date: date | None = None
    last_date: date | None = None
    currencies: set[str] = field(default_factory=set)
    tax_codes: set[str] = field(default_factory=set)
    accounts: set[tuple[str, str]] = field(default_factory=set)  # (account, usage)
    problems: list[Problem] = field(default_factory=list)

    @property
    def single_currency_total(self) -> Decimal | None:
        """The total when every document is in one currency, else None (never a mixed sum)."""
        return self.total if len(self.totals) <= 1 else None

    def document(self, lines: list, day: date, currency: str, total: Decimal) -> list:
        self.documents += 1
        self.lines += len(lines)
        self.total += total
        self.totals[currency] = self.totals.get(currency, ZERO) + total
        self.currencies.add(currency)
        if self.first_date is None or day < self.first_date:
            self.first_date = day
        if self.last_date is None or day > self.last_date:
            self.last_date = day
        return lines

    def skip(self, reference: str, code: str, **params: object) -> None:
        self.problems.append(Problem.of(reference, code, **params))


def _percent(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


# --- Source rows -----------------------------------------------------------------------------
# What the builders read: one row type per sync type, the columns of its query in sources.py.
# The POS builders read rows by position: SQLAlchemy's ``Row`` answers ``row[13]`` in ~15 ns and
# ``row.qty`` in ~250 ns, which was a quarter of the invoice build (docs/performance.md).


class InvoiceRow(NamedTuple):
    """One item line of a POS transaction, with its transaction's values (a transaction with no
    items comes as one row whose item fields are None)."""

    txn_id: int
    receipt_no: str
    created_at: datetime
    member_name: Optional[str]
    status: str
    total: Decimal
    tax_amount: Decimal
    original_receipt_no: Optional[str]
    currency: str
    sst_rate: Decimal
    item_id: Optional[int]
    product_name: Optional[str]
    sku: Optional[str]
    qty: Optional[Decimal]
    unit_price: Optional[Decimal]
    discount: Optional[Decimal]
    line_total: Optional[Decimal]


class ReceiptRow(NamedTuple):
    """One payment line of a paid POS transaction, with its transaction's values."""

    txn_id: int
    receipt_no: str
    paid_at: datetime
    member_name: Optional[str]
    total: Decimal
    refund_of_id: Optional[int]
    currency: str
    has_bad_items: bool
    payment_id: Optional[int]
    method: Optional[str]
    amount: Optional[Decimal]
    amount_received: Optional[Decimal]
    change_amount: Optional[Decimal]
    reference_no: Optional[str]


class BillRow(NamedTuple):
    settlement_id: int
    period: str
    product_sales: Decimal
    rate_snapshot: Decimal
    commission: Optional[Decimal]
    settled_date: date
    kol_code: str
    kol_name: str


class PaymentRow(NamedTuple):
    settlement_id: int
    period: str
    commission: Optional[Decimal]
    paid_at: datetime
    payment_reference: Optional[str]
    kol_code: str
    kol_name: str


# --- POS Sales Invoice -----------------------------------------------------------------------


def build_invoices(rows: Iterable[InvoiceRow], mapping: Mapping, tally: Tally) -> Iterator[list[InvoiceLine]]:
    """One invoice per POS transaction (a refund: a credit note referencing the original).

    The hot loop of a sync (one pass per item line): rows are read by position (sources.py says
    why), amounts are computed once and checked in the same pass, lines are built with
    ``tuple.__new__`` (the NamedTuple without its Python-level ``__new__``). docs/performance.md
    has the profile behind it.
    """
    account, walk_in = mapping.sales_account, mapping.walk_in_customer
    tax_sst, tax_none = mapping.tax_code_sst, mapping.tax_code_none
    new_line, quantize = tuple.__new__, Decimal.quantize
    for _txn_id, group in groupby(rows, key=itemgetter(0)):
        items = list(group)
        (_, number, created_at, member, _status, ns16_total, _tax, original, currency, rate, item_id,
         *_item) = items[0]
        if item_id is None:
            tally.skip(number, "no_items")
            continue
        refund = original is not None
        day = myt_date(created_at)
        customer = (member or "").strip() or walk_in
        taxed = rate > 0
        tax_code = tax_sst if taxed else tax_none
        doc_type = DOC_TYPE_CREDIT_NOTE if refund else DOC_TYPE_INVOICE
        reference_doc = original or ""
        lines, total, problem = [], ZERO, None
        for *_head, _item_id, product, sku, qty, price, discount, line_total in items:
            if discount is None:
                discount = ZERO
            if (qty is None or price is None or line_total is None or price < 0
                    or (qty >= 0 and line_total > 0 if refund else qty <= 0)):
                problem = _item_problem(product, qty, price, line_total, refund)
                break
            amount = quantize(qty * price - discount, SEN, ROUND_HALF_UP)
            if amount != line_total:
                problem = ("item_amount_mismatch", {"product": repr(product), "line_total": line_total})
                break
            tax = quantize(amount * rate / HUNDRED, SEN, ROUND_HALF_UP) if taxed else ZERO
            total += amount + tax
            lines.append(new_line(InvoiceLine, (number, day, doc_type, reference_doc, customer, currency, product, qty,
                                                price, discount, tax_code, tax, account, amount, sku or "")))
        if problem:
            tally.skip(number, problem[0], **problem[1])
            continue
        if total != ns16_total:
            tally.skip(number, "invoice_total_mismatch", total=total, ns16_total=ns16_total)
            continue
        tally.tax_codes.add(tax_code)
        tally.accounts.add((account, "sales"))
        yield tally.document(lines, day, currency, total)


def _item_problem(product: str | None, qty: Decimal | None, price: Decimal | None, line_total: Decimal | None,
                  refund: bool) -> tuple[str, dict[str, object]]:
    """Why NS16 should never have produced this item line (only asked once a check failed)."""
    name = repr(product)
    if qty is None or price is None or line_total is None:
        return "item_incomplete", {"product": name}
    if price < 0:
        return "item_negative_price", {"product": name}
    if refund:
        return "refund_item_positive", {"product": name}
    return "item_quantity_on_sale", {"product": name, "qty": qty}


# --- POS Sales Receipt -----------------------------------------------------------------------


def build_receipts(rows: Iterable[ReceiptRow], mapping: Mapping, tally: Tally) -> Iterator[list[ReceiptLine]]:
    """One receipt (or refund) per paid transaction, a line per payment method, plus a rounding
    line when 5-sen cash rounding made the cash kept differ from the invoice total.

    One pass per payment row, read by position; the reasons for skipping a transaction are only
    worked out (``_receipt_problem``) once the fast checks found one."""
    accounts, walk_in = mapping.payment_accounts, mapping.walk_in_customer
    usages = {method: (account, "receipt") for method, account in accounts.items()}
    new_line, add_account = tuple.__new__, tally.accounts.add
    for _txn_id, group in groupby(rows, key=itemgetter(0)):
        payments = list(group)
        _, invoice, paid_at, member, ns16_total, refund_of_id, currency, bad_items, payment_id, *_pay = payments[0]
        if bad_items or payment_id is None:
            code, params = _receipt_problem(payments, mapping)
            tally.skip(invoice, code, **params)
            continue
        refund = refund_of_id is not None
        number = ("RFND-" if refund else "RCPT-") + invoice
        day = myt_date(paid_at)
        doc_type = DOC_TYPE_REFUND if refund else DOC_TYPE_RECEIPT
        customer = (member or "").strip() or walk_in
        lines, methods, paid, has_cash, unknown = [], [], ZERO, False, False
        for *_head, _payment_id, method, amount, received, change, reference in payments:
            account = accounts.get(method)
            if account is None:
                unknown = True
                break
            if method == "cash" and received is not None and change is not None:
                kept = received - change
                description = f"{METHOD_LABELS['cash']}: received {received}, change {change}"
            else:
                kept = amount
                description = METHOD_LABELS.get(method, method)
            if kept == 0:
                continue
            paid += kept
            has_cash = has_cash or method == "cash"
            methods.append(method)
            lines.append(new_line(ReceiptLine, (number, day, doc_type, customer, currency, invoice, method, account,
                                                kept, reference or "", description)))
        if unknown or not lines:
            code, params = _receipt_problem(payments, mapping)
            tally.skip(invoice, code, **params)
            continue
        difference = ns16_total - paid
        if difference and not (has_cash and abs(difference) <= MAX_CASH_ROUNDING):
            tally.skip(invoice, "receipt_total_mismatch", paid=paid, total=ns16_total)
            continue
        for method in methods:
            add_account(usages[method])
        if difference:
            lines.append(ReceiptLine(number, day, doc_type, customer, currency, invoice, PAYMENT_METHOD_ROUNDING,
                                     mapping.rounding_account, difference, "", "Cash rounding (5 sen)"))
            add_account((mapping.rounding_account, "rounding"))
        yield tally.document(lines, day, currency, ns16_total)


def _receipt_problem(payments: list[ReceiptRow], mapping: Mapping) -> tuple[str, dict[str, object]]:
    """Why a paid transaction gets no receipt (the first reason that applies): code and params."""
    head = payments[0]
    if head.has_bad_items:
        return "receipt_invoice_invalid", {}
    if head.payment_id is None:
        return "receipt_no_payments", {}
    unknown = sorted({p.method for p in payments if p.method not in mapping.payment_accounts})
    if unknown:
        return "receipt_unknown_method", {"methods": ", ".join(unknown)}
    return "receipt_nothing_paid", {}


# --- KOL Bill and KOL Payment ----------------------------------------------------------------


def bill_number(period: str, kol_code: str) -> str:
    return f"KOL-{period}-{kol_code}"


def build_bills(rows: Iterable[BillRow], mapping: Mapping, tally: Tally) -> Iterator[list[BillLine]]:
    """One bill per KOL settlement: the commission the blogger owes the KOL (a supplier)."""
    for row in rows:
        number = bill_number(row.period, row.kol_code)
        if row.commission is None or row.commission <= 0:
            tally.skip(number, "bill_nothing_owed", commission=row.commission)
            continue
        tally.tax_codes.add(mapping.tax_code_none)
        tally.accounts.add((mapping.expense_account, "expense"))
        description = (f"Commission {row.period}: {_percent(row.rate_snapshot)}% of "
                       f"{mapping.currency} {row.product_sales:,.2f}")
        line = BillLine(bill_no=number, bill_date=row.settled_date, supplier=row.kol_name.strip(),
                        currency=mapping.currency, description=description, account=mapping.expense_account,
                        tax_code=mapping.tax_code_none, amount=row.commission, reference=f"KOL {row.kol_code}")
        yield tally.document([line], row.settled_date, mapping.currency, row.commission)


def build_payments(rows: Iterable[PaymentRow], mapping: Mapping, tally: Tally) -> Iterator[list[PaymentLine]]:
    """One payment per paid settlement, against its bill, out of the bank account."""
    for row in rows:
        number = bill_number(row.period, row.kol_code)
        if row.commission is None or row.commission <= 0:
            tally.skip(number, "payment_nothing_paid", commission=row.commission)
            continue
        day = myt_date(row.paid_at)
        tally.accounts.add((mapping.bank_account, "payment"))
        line = PaymentLine(payment_no=f"KOLPAY-{row.period}-{row.kol_code}", payment_date=day,
                           supplier=row.kol_name.strip(), currency=mapping.currency, bill_no=number,
                           account=mapping.bank_account, amount=row.commission,
                           reference=row.payment_reference or "", description=f"Commission {row.period} paid")
        yield tally.document([line], day, mapping.currency, row.commission)


BUILDERS = {
    "pos_invoice": build_invoices,
    "pos_receipt": build_receipts,
    "kol_bill": build_bills,
    "kol_payment": build_payments,
}
