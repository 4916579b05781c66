"""The four AiAccount import templates (docs/aiaccount-api.md, "xlsx templates").

One NamedTuple per import kind; its field order is the column order of the xlsx file and
``COLUMNS[kind]`` holds the exact header names. Money and quantities are ``Decimal``, dates are
``date``, everything else is text ("" for an empty cell).
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple

SALES_INVOICE = "sales-invoice"
SALES_RECEIPT = "sales-receipt"
EXPENSE_BILL = "expense-bill"
EXPENSE_PAYMENT = "expense-payment"
KINDS: tuple[str, ...] = (SALES_INVOICE, SALES_RECEIPT, EXPENSE_BILL, EXPENSE_PAYMENT)

# Portal sync type -> AiAccount import kind (portal.models.SYNC_TYPES order).
SYNC_TYPE_KINDS: dict[str, str] = {
    "pos_invoice": SALES_INVOICE,
    "pos_receipt": SALES_RECEIPT,
    "kol_bill": EXPENSE_BILL,
    "kol_payment": EXPENSE_PAYMENT,
}

DOC_TYPE_INVOICE = "Invoice"
DOC_TYPE_CREDIT_NOTE = "Credit Note"
DOC_TYPE_RECEIPT = "Receipt"
DOC_TYPE_REFUND = "Refund"
PAYMENT_METHOD_ROUNDING = "rounding"


class InvoiceLine(NamedTuple):
    """One line of a sales invoice or credit note (a credit note carries a negative Qty)."""

    doc_no: str
    doc_date: date
    doc_type: str  # DOC_TYPE_INVOICE | DOC_TYPE_CREDIT_NOTE
    original_doc_no: str  # credit notes: the invoice credited; "" for invoices
    customer: str
    currency: str
    description: str
    qty: Decimal  # up to 3 dp
    unit_price: Decimal
    discount: Decimal
    tax_code: str
    tax_amount: Decimal
    account: str
    line_amount: Decimal  # round_half_up(qty * unit_price - discount, 2)
    reference: str


class ReceiptLine(NamedTuple):
    """One payment line of a receipt (or refund: negative amount) settling an invoice."""

    receipt_no: str
    receipt_date: date
    doc_type: str  # DOC_TYPE_RECEIPT | DOC_TYPE_REFUND
    customer: str
    currency: str
    invoice_no: str
    payment_method: str  # PAYMENT_METHOD_ROUNDING marks a rounding line
    account: str
    amount: Decimal
    reference: str
    description: str


class BillLine(NamedTuple):
    """One line of an expense bill payable to a supplier (a KOL)."""

    bill_no: str
    bill_date: date
    supplier: str
    currency: str
    description: str
    account: str
    tax_code: str
    amount: Decimal
    reference: str


class PaymentLine(NamedTuple):
    """One line of a payment settling a stored bill of the same supplier."""

    payment_no: str
    payment_date: date
    supplier: str
    currency: str
    bill_no: str
    account: str
    amount: Decimal
    reference: str
    description: str


Line = InvoiceLine | ReceiptLine | BillLine | PaymentLine

LINE_TYPES: dict[str, type[Line]] = {
    SALES_INVOICE: InvoiceLine,
    SALES_RECEIPT: ReceiptLine,
    EXPENSE_BILL: BillLine,
    EXPENSE_PAYMENT: PaymentLine,
}

COLUMNS: dict[str, list[str]] = {
    SALES_INVOICE: [
        "Doc No", "Doc Date", "Doc Type", "Original Doc No", "Customer", "Currency",
        "Description", "Qty", "Unit Price", "Discount", "Tax Code", "Tax Amount", "Account",
        "Line Amount", "Reference",
    ],
    SALES_RECEIPT: [
        "Receipt No", "Receipt Date", "Doc Type", "Customer", "Currency", "Invoice No",
        "Payment Method", "Account", "Amount", "Reference", "Description",
    ],
    EXPENSE_BILL: [
        "Bill No", "Bill Date", "Supplier", "Currency", "Description", "Account", "Tax Code",
        "Amount", "Reference",
    ],
    EXPENSE_PAYMENT: [
        "Payment No", "Payment Date", "Supplier", "Currency", "Bill No", "Account", "Amount",
        "Reference", "Description",
    ],
}
