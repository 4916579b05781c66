"""The database: NS16's own tables (read-only for sync code) and the sync tables.

Money is ``Numeric(12, 2)`` read as ``Decimal``; times are stored in UTC.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Optional

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .timeutil import as_utc, utcnow


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else as_utc(value)

    def process_result_value(self, value, dialect):
        return None if value is None else as_utc(value)


Money = Numeric(12, 2, asdecimal=True)
Rate = Numeric(5, 2, asdecimal=True)
Quantity = Numeric(12, 3, asdecimal=True)

ROLES = ("blogger", "super_admin")
POS_STATUSES = ("paid", "unpaid", "voided")
PAYMENT_METHODS = ("cash", "card", "tng", "grabpay", "duitnow")
SETTLEMENT_STATUSES = ("generated", "paid")
SYNC_TYPES = ("pos_invoice", "pos_receipt", "kol_bill", "kol_payment")
RUN_STATUSES = ("queued", "running", "succeeded", "no_data", "failed")
ACTIVE_RUN_STATUSES = ("queued", "running")
TRIGGERS = ("user", "auto_push", "cli", "reconcile")


def _new_token() -> str:
    return secrets.token_hex(16)


# --- NS16 source tables ---------------------------------------------------------------------


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="blogger")
    locale: Mapped[str] = mapped_column(String(5), default="en")
    # Rotated on logout and password change so a replayed session cookie is refused.
    session_token: Mapped[str] = mapped_column(String(32), default=_new_token)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    blogger: Mapped[Optional["Blogger"]] = relationship(back_populates="user", uselist=False)

    __table_args__ = (CheckConstraint("role IN ('blogger', 'super_admin')", name="role"),)

    # flask-login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    def rotate_session(self) -> None:
        self.session_token = _new_token()

    @property
    def is_super_admin(self) -> bool:
        return self.role == "super_admin"


class Blogger(db.Model):
    __tablename__ = "bloggers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    shop_name: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    multi_kol: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="blogger")
    stores: Mapped[list["Store"]] = relationship(back_populates="blogger", order_by="Store.id")
    credential: Mapped[Optional["AiAccountCredential"]] = relationship(
        back_populates="blogger", uselist=False
    )
    settings: Mapped[Optional["AiAccountSettings"]] = relationship(
        back_populates="blogger", uselist=False
    )


class Store(db.Model):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3), default="MYR")
    sst_rate: Mapped[Decimal] = mapped_column(Rate, default=Decimal("0"))

    blogger: Mapped[Blogger] = relationship(back_populates="stores")


class PosTransaction(db.Model):
    __tablename__ = "pos_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    receipt_no: Mapped[str] = mapped_column(String(20))
    member_name: Mapped[Optional[str]] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(10), default="paid")
    subtotal: Mapped[Decimal] = mapped_column(Money)
    tax_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    total: Mapped[Decimal] = mapped_column(Money)
    refund_of_id: Mapped[Optional[int]] = mapped_column(ForeignKey("pos_transactions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    store: Mapped[Store] = relationship()
    items: Mapped[list["PosTransactionItem"]] = relationship(
        back_populates="transaction", order_by="PosTransactionItem.id"
    )
    payments: Mapped[list["PosPayment"]] = relationship(
        back_populates="transaction", order_by="PosPayment.id"
    )
    refund_of: Mapped[Optional["PosTransaction"]] = relationship(remote_side=[id])

    __table_args__ = (
        UniqueConstraint("blogger_id", "receipt_no", name="uq_pos_transactions_blogger_receipt"),
        CheckConstraint("status IN ('paid', 'unpaid', 'voided')", name="status"),
        Index("ix_pos_transactions_blogger_created", "blogger_id", "created_at"),
        Index("ix_pos_transactions_blogger_paid", "blogger_id", "paid_at"),
    )


class PosTransactionItem(db.Model):
    __tablename__ = "pos_transaction_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("pos_transactions.id"), index=True)
    product_name: Mapped[str] = mapped_column(String(200))
    sku: Mapped[Optional[str]] = mapped_column(String(64))
    qty: Mapped[Optional[Decimal]] = mapped_column(Quantity)
    unit_price: Mapped[Optional[Decimal]] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    line_total: Mapped[Decimal] = mapped_column(Money)

    transaction: Mapped[PosTransaction] = relationship(back_populates="items")


class PosPayment(db.Model):
    __tablename__ = "pos_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("pos_transactions.id"), index=True)
    method: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(Money)
    amount_received: Mapped[Optional[Decimal]] = mapped_column(Money)
    change_amount: Mapped[Optional[Decimal]] = mapped_column(Money)
    reference_no: Mapped[Optional[str]] = mapped_column(String(64))

    transaction: Mapped[PosTransaction] = relationship(back_populates="payments")

    __table_args__ = (
        CheckConstraint(
            "method IN ('cash', 'card', 'tng', 'grabpay', 'duitnow')", name="method"
        ),
    )


class Kol(db.Model):
    __tablename__ = "kols"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))
    commission_rate: Mapped[Decimal] = mapped_column(Rate)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("blogger_id", "code", name="uq_kols_blogger_code"),)


class KolSettlement(db.Model):
    __tablename__ = "kol_settlements"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"))
    kol_id: Mapped[int] = mapped_column(ForeignKey("kols.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    product_sales: Mapped[Decimal] = mapped_column(Money)
    rate_snapshot: Mapped[Decimal] = mapped_column(Rate)
    commission: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(10), default="generated")
    settled_date: Mapped[date] = mapped_column(Date)
    paid_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    payment_reference: Mapped[Optional[str]] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    kol: Mapped[Kol] = relationship()

    __table_args__ = (
        UniqueConstraint("kol_id", "period", name="uq_kol_settlements_kol_period"),
        CheckConstraint("status IN ('generated', 'paid')", name="status"),
        Index("ix_kol_settlements_blogger_settled", "blogger_id", "settled_date"),
        Index("ix_kol_settlements_blogger_paid", "blogger_id", "paid_at"),
    )


class Order(db.Model):
    """E-commerce orders: they go to the platform's AiAccount, never pushed from here."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"), index=True)
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    total: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20), default="completed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BloggerSettlement(db.Model):
    """Commissions the platform owes the blogger: income for them, never pushed from here."""

    __tablename__ = "blogger_settlements"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(10), default="generated")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- Sync tables ----------------------------------------------------------------------------


class AiAccountCredential(db.Model):
    __tablename__ = "aiaccount_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"), unique=True)
    company_name: Mapped[str] = mapped_column(String(200))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    key_version: Mapped[str] = mapped_column(String(16))
    last4: Mapped[str] = mapped_column(String(4))
    set_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_test_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    last_test_ok: Mapped[Optional[bool]] = mapped_column(Boolean)
    last_test_message: Mapped[Optional[str]] = mapped_column(String(500))
    # The company's master data (currencies, tax codes, accounts; no secrets) as last fetched by a
    # connection test or a push, so settings forms can offer choices without decrypting the key.
    master_data: Mapped[Optional[str]] = mapped_column(Text)
    master_data_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    blogger: Mapped[Blogger] = relationship(back_populates="credential")
    set_by: Mapped[Optional[User]] = relationship()

    def __repr__(self) -> str:  # never the ciphertext, never the key
        return f"<AiAccountCredential blogger={self.blogger_id} company={self.company_name!r} ••••{self.last4}>"


class AiAccountSettings(db.Model):
    __tablename__ = "aiaccount_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="MYR")
    tax_code_none: Mapped[str] = mapped_column(String(32), default="NT")
    tax_code_sst: Mapped[str] = mapped_column(String(32), default="MY-SALES10")
    sales_account: Mapped[str] = mapped_column(String(20), default="40000")
    bank_account: Mapped[str] = mapped_column(String(20), default="12000")
    expense_account: Mapped[str] = mapped_column(String(20), default="61001")
    rounding_account: Mapped[str] = mapped_column(String(20), default="40000")
    account_cash: Mapped[str] = mapped_column(String(20), default="12100")
    account_card: Mapped[str] = mapped_column(String(20), default="12500")
    account_tng: Mapped[str] = mapped_column(String(20), default="12200")
    account_grabpay: Mapped[str] = mapped_column(String(20), default="12300")
    account_duitnow: Mapped[str] = mapped_column(String(20), default="12400")
    walk_in_customer: Mapped[str] = mapped_column(String(120), default="Walk-in Customer")
    auto_push_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_push_hour: Mapped[int] = mapped_column(Integer, default=2)
    last_auto_push_date: Mapped[Optional[date]] = mapped_column(Date)  # last day pushed in full
    auto_push_attempted_on: Mapped[Optional[date]] = mapped_column(Date)  # MYT day of the last attempt
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    blogger: Mapped[Blogger] = relationship(back_populates="settings")

    __table_args__ = (
        CheckConstraint("auto_push_hour BETWEEN 0 AND 23", name="auto_push_hour"),
    )

    def payment_account(self, method: str) -> str:
        return getattr(self, f"account_{method}")


class SyncRun(db.Model):
    """One Sync of one type over one date range: the single source of truth for its status."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id"))
    sync_type: Mapped[str] = mapped_column(String(16))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    trigger: Mapped[str] = mapped_column(String(10), default="user")
    triggered_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"))
    job_id: Mapped[Optional[str]] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    row_count: Mapped[int] = mapped_column(Integer, default=0)  # documents in the range
    line_count: Mapped[int] = mapped_column(Integer, default=0)  # xlsx rows sent
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    changed_count: Mapped[int] = mapped_column(Integer, default=0)
    total_amount: Mapped[Optional[Decimal]] = mapped_column(Money)
    error_code: Mapped[Optional[str]] = mapped_column(String(40))
    error_message: Mapped[Optional[str]] = mapped_column(String(500))
    error_hint: Mapped[Optional[str]] = mapped_column(String(500))
    error_detail: Mapped[Optional[str]] = mapped_column(Text)  # JSON
    import_id: Mapped[Optional[str]] = mapped_column(String(200))
    import_url: Mapped[Optional[str]] = mapped_column(String(500))
    phase_timings: Mapped[Optional[str]] = mapped_column(Text)  # JSON {phase: seconds}
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    finished_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    blogger: Mapped[Blogger] = relationship()
    triggered_by: Mapped[Optional[User]] = relationship()

    __table_args__ = (
        Index("ix_sync_runs_blogger_type_created", "blogger_id", "sync_type", "created_at"),
        # At most one queued/running run per blogger + type, whatever Redis thinks.
        Index(
            "uq_sync_runs_one_active",
            "blogger_id",
            "sync_type",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'no_data', 'failed')", name="status"
        ),
        CheckConstraint(
            "sync_type IN ('pos_invoice', 'pos_receipt', 'kol_bill', 'kol_payment')",
            name="sync_type",
        ),
    )

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


class AuditLog(db.Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[Optional[str]] = mapped_column(String(64))
    blogger_id: Mapped[Optional[int]] = mapped_column(ForeignKey("bloggers.id"))
    actor_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    details: Mapped[Optional[str]] = mapped_column(Text)  # JSON, never a secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_audit_log_created", "created_at"),
        Index("ix_audit_log_blogger_created", "blogger_id", "created_at"),
    )


class LoginAttempt(db.Model):
    """Failed logins, counted per account and per IP for throttling."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ReconcileSnapshot(db.Model):
    """What AiAccount holds for one blogger, type, MYT day and document currency, as last read by
    the refresh job (``portal.reconcile.refresh_snapshots``): its document count and total. A day
    it returned nothing for is stored with zeros (for each of the blogger's currencies), so
    "nothing in AiAccount" is known, not guessed."""

    __tablename__ = "reconcile_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    blogger_id: Mapped[int] = mapped_column(ForeignKey("bloggers.id", ondelete="CASCADE"))
    sync_type: Mapped[str] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3), default="MYR", server_default="MYR")
    documents: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("blogger_id", "sync_type", "day", "currency",
                         name="uq_reconcile_snapshots_blogger_type_day_currency"),
        CheckConstraint(
            "sync_type IN ('pos_invoice', 'pos_receipt', 'kol_bill', 'kol_payment')", name="sync_type"
        ),
    )
