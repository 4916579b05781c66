"""Reading a blogger's own NS16 rows for one sync type, streamed with SQLAlchemy Core.

One query per type (no N+1), filtered by the blogger and by MYT day bounds, streamed in
batches so memory stays flat however many rows a range holds. Only the four source tables
are read here: e-commerce ``orders`` and ``blogger_settlements`` never are.

Each query's columns are exactly the fields of its row type (``documents.InvoiceRow`` …), in that
order: the POS builders read rows by position (documents.py says why), tests build rows with the
same NamedTuples, and tests/test_documents.py checks that the columns match the fields.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import aliased

from .documents import BillRow, InvoiceRow, PaymentRow, ReceiptRow
from .extensions import db
from .models import Kol, KolSettlement, PosPayment, PosTransaction, PosTransactionItem, Store
from .timeutil import myt_range_to_utc

STREAM_BATCH = 2000

T = PosTransaction.__table__
I = PosTransactionItem.__table__
P = PosPayment.__table__
S = Store.__table__
K = Kol.__table__
KS = KolSettlement.__table__
ORIGINAL = aliased(PosTransaction.__table__, name="original")


def invoice_rows_query(blogger_id: int, start: date, end: date) -> Select:
    """Item lines of every non-voided POS transaction created on the MYT days start..end."""
    lower, upper = myt_range_to_utc(start, end)
    return (
        select(
            T.c.id.label("txn_id"), T.c.receipt_no, T.c.created_at, T.c.member_name, T.c.status,
            T.c.total, T.c.tax_amount, ORIGINAL.c.receipt_no.label("original_receipt_no"),
            S.c.currency, S.c.sst_rate, I.c.id.label("item_id"), I.c.product_name, I.c.sku, I.c.qty,
            I.c.unit_price, I.c.discount, I.c.line_total,
        )
        .select_from(T.join(S, S.c.id == T.c.store_id)
                     .outerjoin(I, I.c.transaction_id == T.c.id)
                     .outerjoin(ORIGINAL, ORIGINAL.c.id == T.c.refund_of_id))
        .where(T.c.blogger_id == blogger_id, T.c.status != "voided",
               T.c.created_at >= lower, T.c.created_at < upper)
        .order_by(T.c.created_at, T.c.id, I.c.id)
    )


def _bad_items_exist():
    """A transaction with an item NS16 should never have produced (the invoice builder skips it,
    so its receipt must be skipped too)."""
    return exists().where(
        I.c.transaction_id == T.c.id,
        or_(I.c.qty.is_(None), I.c.unit_price.is_(None), I.c.line_total.is_(None),
            and_(T.c.refund_of_id.is_(None), I.c.qty <= 0), I.c.unit_price < 0),
    )


def receipt_rows_query(blogger_id: int, start: date, end: date) -> Select:
    """Payment lines of every paid POS transaction paid on the MYT days start..end."""
    lower, upper = myt_range_to_utc(start, end)
    return (
        select(
            T.c.id.label("txn_id"), T.c.receipt_no, T.c.paid_at, T.c.member_name, T.c.total,
            T.c.refund_of_id, S.c.currency, _bad_items_exist().label("has_bad_items"),
            P.c.id.label("payment_id"), P.c.method, P.c.amount, P.c.amount_received, P.c.change_amount,
            P.c.reference_no,
        )
        .select_from(T.join(S, S.c.id == T.c.store_id).outerjoin(P, P.c.transaction_id == T.c.id))
        .where(T.c.blogger_id == blogger_id, T.c.status == "paid",
               T.c.paid_at >= lower, T.c.paid_at < upper)
        .order_by(T.c.paid_at, T.c.id, P.c.id)
    )


def bill_rows_query(blogger_id: int, start: date, end: date) -> Select:
    """KOL settlements the blogger owes, settled on start..end (a settlement date is a MYT day)."""
    return (
        select(KS.c.id.label("settlement_id"), KS.c.period, KS.c.product_sales, KS.c.rate_snapshot,
               KS.c.commission, KS.c.settled_date, K.c.code.label("kol_code"), K.c.name.label("kol_name"))
        .select_from(KS.join(K, K.c.id == KS.c.kol_id))
        .where(KS.c.blogger_id == blogger_id, KS.c.settled_date >= start, KS.c.settled_date <= end)
        .order_by(KS.c.settled_date, KS.c.id)
    )


def payment_rows_query(blogger_id: int, start: date, end: date) -> Select:
    """Paid KOL settlements, by the MYT day they were paid."""
    lower, upper = myt_range_to_utc(start, end)
    return (
        select(KS.c.id.label("settlement_id"), KS.c.period, KS.c.commission, KS.c.paid_at,
               KS.c.payment_reference, K.c.code.label("kol_code"), K.c.name.label("kol_name"))
        .select_from(KS.join(K, K.c.id == KS.c.kol_id))
        .where(KS.c.blogger_id == blogger_id, KS.c.status == "paid",
               KS.c.paid_at >= lower, KS.c.paid_at < upper)
        .order_by(KS.c.paid_at, KS.c.id)
    )


ROW_TYPES = {
    "pos_invoice": InvoiceRow,
    "pos_receipt": ReceiptRow,
    "kol_bill": BillRow,
    "kol_payment": PaymentRow,
}

QUERIES = {
    "pos_invoice": invoice_rows_query,
    "pos_receipt": receipt_rows_query,
    "kol_bill": bill_rows_query,
    "kol_payment": payment_rows_query,
}


def stream(sync_type: str, blogger_id: int, start: date, end: date) -> Iterator[Any]:
    """Rows of one sync type, streamed in batches (a server-side cursor on PostgreSQL)."""
    query = QUERIES[sync_type](blogger_id, start, end)
    result = db.session.execute(query.execution_options(yield_per=STREAM_BATCH))
    try:
        yield from result
    finally:
        result.close()
