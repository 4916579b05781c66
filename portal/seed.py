"""A realistic, deterministic NS16 demo shop (``flask --app wsgi seed-demo``)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, text

from .credentials import set_credential
from .extensions import db
from .models import (
    AiAccountSettings,
    Blogger,
    BloggerSettlement,
    Kol,
    KolSettlement,
    Order,
    PosPayment,
    PosTransaction,
    PosTransactionItem,
    Store,
    User,
)
from .money import ZERO, line_amount, line_tax, round_cash, round_money
from .passwords import hash_password
from .timeutil import myt_at, myt_date, myt_today

DEMO_PASSWORD = "demo1234"
# The AiAccount simulator's demo companies (simulator/seed.py): blogger 1 → healthy,
# blogger 2 → a company without the MY-SALES10 tax code.
DEMO_COMPANIES = {
    1: ("Blogger One Trading", "aia_demo_healthy_5f3c9e1a2b"),
    2: ("Blogger Two Enterprise", "aia_demo_nosst_7d41c0aa3e"),
}
PRODUCTS = [
    ("Matte Lipstick", "LIP-01", Decimal("39.90")),
    ("Hydra Serum 30ml", "SER-30", Decimal("89.00")),
    ("Sunscreen SPF50", "SUN-50", Decimal("45.50")),
    ("Cushion Foundation", "CUS-02", Decimal("119.00")),
    ("Brow Pencil", "BRW-01", Decimal("24.90")),
    ("Tote Bag", "BAG-01", Decimal("15.00")),
    ("Sheet Mask (5 pcs)", "MSK-05", Decimal("32.45")),
    ("Hair Oil 50ml", "HAI-50", Decimal("57.80")),
]
MEMBERS = ["Tan Mei Ling", "Nurul Aisyah", "Rajesh Kumar", "Lim Wei Jie", "Siti Rahmah", "张伟", "Chong Ka Yan"]
E_METHODS = ["card", "tng", "grabpay", "duitnow"]
TABLES_IN_DELETE_ORDER = [
    "audit_log", "sync_runs", "aiaccount_settings", "aiaccount_credentials", "login_attempts",
    "pos_payments", "pos_transaction_items", "pos_transactions", "kol_settlements", "kols",
    "orders", "blogger_settlements", "stores", "bloggers", "users",
]


@dataclass
class _Ids:
    txn: int = 0
    item: int = 0
    pay: int = 0


@dataclass
class _Batch:
    txns: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    pays: list[dict] = field(default_factory=list)

    def size(self) -> int:
        return len(self.txns) + len(self.items) + len(self.pays)

    def flush(self) -> None:
        for model, rows in ((PosTransaction, self.txns), (PosTransactionItem, self.items), (PosPayment, self.pays)):
            if rows:
                db.session.execute(insert(model), rows)
            rows.clear()


class _ShopBuilder:
    """Generates one blogger's POS history with explicit ids, flushed in bulk batches."""

    def __init__(self, rng: random.Random, ids: _Ids, blogger: Blogger, stores: list[Store]):
        self.rng, self.ids, self.blogger, self.stores = rng, ids, blogger, stores
        self.seq: dict[date, int] = {}
        self.batch = _Batch()
        self.count = 0
        self.paid: list[tuple[int, dict, list[dict], list[dict]]] = []

    def receipt_no(self, created: datetime) -> str:
        day = myt_date(created)
        self.seq[day] = self.seq.get(day, 0) + 1
        return f"POS{day:%Y%m%d}{self.seq[day]:05d}"

    def sale(self, created: datetime) -> None:
        rng = self.rng
        store = rng.choice(self.stores)
        self.ids.txn += 1
        txn_id = self.ids.txn
        items, subtotal, tax = [], ZERO, ZERO
        for _ in range(rng.choice((1, 2, 3, 3, 4, 5))):
            name, sku, price = rng.choice(PRODUCTS)
            qty = Decimal(rng.choice((1, 1, 1, 2, 3)))
            discount = rng.choice((ZERO, ZERO, ZERO, Decimal("5.00"), round_money(price * qty / 10)))
            amount = line_amount(qty, price, discount)
            self.ids.item += 1
            items.append(dict(id=self.ids.item, transaction_id=txn_id, product_name=name, sku=sku,
                              qty=qty, unit_price=price, discount=discount, line_total=amount))
            subtotal += amount
            tax += line_tax(amount, store.sst_rate)
        total = subtotal + tax
        roll = rng.random()
        status = "paid" if roll < 0.88 else ("unpaid" if roll < 0.94 else "voided")
        paid_at = created + timedelta(minutes=rng.choice((0, 0, 1, 2))) if status == "paid" else None
        txn = dict(id=txn_id, blogger_id=self.blogger.id, store_id=store.id, receipt_no=self.receipt_no(created),
                   member_name=rng.choice(MEMBERS) if rng.random() < 0.4 else None, status=status,
                   subtotal=subtotal, tax_amount=tax, total=total, refund_of_id=None,
                   created_at=created, paid_at=paid_at, updated_at=created)
        pays = self.payments(txn_id, total, store.currency) if status == "paid" else []
        self.add(txn, items, pays)
        if status == "paid":
            self.paid.append((txn_id, txn, items, pays))

    def payments(self, txn_id: int, total: Decimal, currency: str) -> list[dict]:
        rng = self.rng
        parts: list[tuple[str, Decimal]]
        if total > 20 and rng.random() < 0.3:  # split bill: part e-wallet/card, rest cash or card
            first = round_money(total * Decimal(rng.choice((30, 50, 60))) / 100)
            parts = [(rng.choice(E_METHODS), first), (rng.choice(("cash", "card")), total - first)]
        else:
            parts = [(rng.choice(("cash", "cash", "card", "tng", "grabpay", "duitnow")), total)]
        rows = []
        for method, amount in parts:
            self.ids.pay += 1
            row = dict(id=self.ids.pay, transaction_id=txn_id, method=method, amount=amount,
                       amount_received=None, change_amount=None, reference_no=None)
            if method == "cash":
                kept = round_cash(amount) if currency == "MYR" else amount
                received = kept if rng.random() < 0.3 else Decimal(int(kept // 10 + 1) * 10)
                row.update(amount=kept, amount_received=received, change_amount=received - kept)
            else:
                row["reference_no"] = f"{method.upper()}{rng.randrange(10**9):09d}"
            rows.append(row)
        return rows

    def refund(self, when: datetime) -> bool:
        """A partial refund: a new negative transaction linked to an earlier paid sale."""
        # Refund sales of the same MYT month, so a month's sync holds every original its credit notes cite.
        month = myt_date(when).replace(day=1)
        candidates = [p for p in self.paid[-200:] if p[1]["created_at"] < when - timedelta(hours=1)
                      and myt_date(p[1]["created_at"]).replace(day=1) == month]
        if not candidates:
            return False
        orig_id, orig, orig_items, orig_pays = self.rng.choice(candidates)
        item = self.rng.choice(orig_items)
        rate = next(s.sst_rate for s in self.stores if s.id == orig["store_id"])
        qty = Decimal(1)
        amount = line_amount(-qty, item["unit_price"], ZERO)
        tax = line_tax(amount, rate)
        total = amount + tax
        self.ids.txn += 1
        self.ids.item += 1
        txn = dict(id=self.ids.txn, blogger_id=self.blogger.id, store_id=orig["store_id"],
                   receipt_no=self.receipt_no(when), member_name=orig["member_name"], status="paid",
                   subtotal=amount, tax_amount=tax, total=total, refund_of_id=orig_id,
                   created_at=when, paid_at=when, updated_at=when)
        items = [dict(id=self.ids.item, transaction_id=self.ids.txn, product_name=item["product_name"],
                      sku=item["sku"], qty=-qty, unit_price=item["unit_price"], discount=ZERO, line_total=amount)]
        method = orig_pays[0]["method"] if orig_pays else "cash"
        self.ids.pay += 1
        pay = dict(id=self.ids.pay, transaction_id=self.ids.txn, method=method, amount=total,
                   amount_received=None, change_amount=None,
                   reference_no=None if method == "cash" else f"RF{self.rng.randrange(10**9):09d}")
        if method == "cash":
            pay.update(amount=-round_cash(-total), amount_received=ZERO, change_amount=round_cash(-total))
        self.add(txn, items, [pay])
        return True

    def add(self, txn: dict, items: list[dict], pays: list[dict]) -> None:
        self.batch.txns.append(txn)
        self.batch.items.extend(items)
        self.batch.pays.extend(pays)
        self.count += 1
        if self.batch.size() >= 20000:
            self.batch.flush()


def _times_for_day(rng: random.Random, day: date, count: int) -> list[datetime]:
    times = [myt_at(day, rng.randrange(9, 23), rng.randrange(60)) + timedelta(seconds=rng.randrange(60))
             for _ in range(count)]
    return sorted(times)


def reset_all() -> None:
    for table in TABLES_IN_DELETE_ORDER:
        db.session.execute(text(f"DELETE FROM {table}"))
    db.session.commit()


def seed_demo(*, seed: int = 16, password: str = DEMO_PASSWORD, transactions: int | None = None,
              days: int = 60, today: date | None = None, connect: bool = True) -> dict:
    """Wipe and rebuild the demo shop. Returns what it made (logins and counts)."""
    rng = random.Random(seed)
    today = today or myt_today()
    first_day = today - timedelta(days=days)
    reset_all()
    pw_hash = hash_password(password)
    admin = User(email="admin@demo.test", name="NS16 Super Admin", password_hash=pw_hash, role="super_admin")
    db.session.add(admin)
    bloggers = []
    for n, (shop, sst_store, sgd_store) in enumerate(
        [("Mei's Beauty Corner", "Mid Valley Kiosk", "Singapore Pop-up"),
         ("Aisyah Skin Studio", "Bangsar Studio", "Johor Bahru Booth")], start=1):
        user = User(email=f"blogger{n}@demo.test", name=shop, password_hash=pw_hash, role="blogger")
        blogger = Blogger(user=user, shop_name=shop)
        blogger.stores = [
            Store(name=sst_store, currency="MYR", sst_rate=Decimal("10.00")),
            Store(name=sgd_store, currency="SGD", sst_rate=Decimal("0.00")),
        ]
        blogger.settings = AiAccountSettings()
        db.session.add(blogger)
        bloggers.append(blogger)
    db.session.flush()

    ids = _Ids()
    counts = {}
    for blogger in bloggers:
        shop = _ShopBuilder(rng, ids, blogger, blogger.stores)
        wanted = transactions if (transactions is not None and blogger is bloggers[0]) else None
        span = [first_day + timedelta(days=d) for d in range(days)]
        per_day = [rng.randrange(3, 9) for _ in span] if wanted is None else _spread(wanted, len(span))
        for day, count in zip(span, per_day):
            refunds = sum(1 for _ in range(count) if rng.random() < 0.04) if count > 1 else 0
            for when in _times_for_day(rng, day, count - refunds):
                shop.sale(when)
            for _ in range(refunds):
                if not shop.refund(myt_at(day, 20, rng.randrange(60))):
                    shop.sale(myt_at(day, 21, rng.randrange(60)))
            if wanted is None and day.day in (14, 15):  # around midnight MYT
                shop.sale(myt_at(day, 23, 30))
                shop.sale(myt_at(day + timedelta(days=1), 0, 5) if day + timedelta(days=1) < today
                          else myt_at(day, 23, 55))
        shop.batch.flush()
        counts[blogger.user.email] = shop.count
        _kols_and_settlements(rng, blogger, today)
        _platform_rows(rng, blogger, first_day, days)
    _fix_sequences()
    if connect:
        for n, blogger in enumerate(bloggers, start=1):
            company, key = DEMO_COMPANIES[n]
            set_credential(blogger, company, key, admin)
    db.session.commit()
    return {"password": password, "users": [admin.email] + [b.user.email for b in bloggers],
            "transactions": counts}


def _spread(total: int, days: int) -> list[int]:
    base, extra = divmod(total, days)
    return [base + (1 if d < extra else 0) for d in range(days)]


def _kols_and_settlements(rng: random.Random, blogger: Blogger, today: date) -> None:
    names = ["Farah Beauty", "Jason Vlogs", "Mimi Makeup", "KL Foodie Ken"]
    kols = []
    for k in range(3 if blogger.id % 2 else 2):
        kol = Kol(blogger_id=blogger.id, code=f"K{k + 1:03d}", name=names[(blogger.id + k) % len(names)],
                  commission_rate=Decimal(rng.choice(("8.00", "10.00", "12.50", "15.00"))))
        db.session.add(kol)
        kols.append(kol)
    db.session.flush()
    month_start = today.replace(day=1)
    for back in (3, 2, 1):
        period_start = month_start
        for _ in range(back):
            period_start = (period_start - timedelta(days=1)).replace(day=1)
        settled = (period_start + timedelta(days=32)).replace(day=rng.randrange(1, 6))
        if settled >= today:
            settled = today - timedelta(days=1)
        for kol in kols:
            sales = round_money(Decimal(rng.randrange(80000, 900000)) / 100)
            paid = back > 1 or rng.random() < 0.5
            paid_at = myt_at(settled + timedelta(days=rng.randrange(1, 5)), 11, 0) if paid else None
            if paid_at is not None and myt_date(paid_at) >= today:
                paid_at = myt_at(today - timedelta(days=1), 11, 0)
            db.session.add(KolSettlement(
                blogger_id=blogger.id, kol_id=kol.id, period=f"{period_start:%Y-%m}", product_sales=sales,
                rate_snapshot=kol.commission_rate, commission=round_money(sales * kol.commission_rate / 100),
                status="paid" if paid else "generated", settled_date=settled, paid_at=paid_at,
                payment_reference=f"IBG{rng.randrange(10**8):08d}" if paid else None))


def _platform_rows(rng: random.Random, blogger: Blogger, first_day: date, days: int) -> None:
    """E-commerce orders and platform commissions: present in NS16, never pushed from here."""
    for n in range(20):
        day = first_day + timedelta(days=rng.randrange(days))
        db.session.add(Order(blogger_id=blogger.id, order_no=f"EC{blogger.id}{n:06d}",
                             total=round_money(Decimal(rng.randrange(2000, 40000)) / 100),
                             created_at=myt_at(day, 12)))
    month = first_day.replace(day=1)
    for _ in range(2):
        db.session.add(BloggerSettlement(blogger_id=blogger.id, period=f"{month:%Y-%m}",
                                         amount=round_money(Decimal(rng.randrange(10000, 90000)) / 100)))
        month = (month + timedelta(days=32)).replace(day=1)


def _fix_sequences() -> None:
    """Explicit ids were inserted; move PostgreSQL's sequences past them."""
    if db.engine.dialect.name != "postgresql":
        return
    for table in ("pos_transactions", "pos_transaction_items", "pos_payments"):
        db.session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"))
