"""Test data builders: NS16 rows shaped as the seed makes them, small and explicit."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from itertools import count

import pytest

from portal.extensions import db
from portal.models import (
    AiAccountSettings,
    Blogger,
    Kol,
    KolSettlement,
    PosPayment,
    PosTransaction,
    PosTransactionItem,
    Store,
    User,
)
from portal.money import line_amount, line_tax
from portal.passwords import hash_password

PASSWORD = "pw-secret-123"
_seq = count(1)
_HASH: dict[str, str] = {}


def _password_hash() -> str:
    if PASSWORD not in _HASH:  # argon2 is deliberately slow: hash once per session
        _HASH[PASSWORD] = hash_password(PASSWORD)
    return _HASH[PASSWORD]


def make_user(email: str | None = None, role: str = "blogger", locale: str = "en") -> User:
    n = next(_seq)
    user = User(email=email or f"user{n}@test.example", name=f"User {n}", role=role, locale=locale,
                password_hash=_password_hash())
    db.session.add(user)
    db.session.flush()
    return user


def make_admin(email: str = "admin@test.example") -> User:
    return make_user(email, role="super_admin")


def make_blogger(email: str | None = None, *, sst_rate: str = "0", currency: str = "MYR",
                 settings: bool = True) -> Blogger:
    user = make_user(email)
    blogger = Blogger(user=user, shop_name=f"Shop of {user.email}")
    blogger.stores = [Store(name="Main store", currency=currency, sst_rate=Decimal(sst_rate))]
    if settings:
        blogger.settings = AiAccountSettings()
    db.session.add(blogger)
    db.session.flush()
    return blogger


def make_sale(blogger: Blogger, created_at: datetime, items: list[tuple[str, str, str]] | None = None, *,
              status: str = "paid", payments: list[dict] | None = None, member: str | None = None,
              store: Store | None = None, receipt_no: str | None = None, refund_of: PosTransaction | None = None,
              paid_at: datetime | None = None) -> PosTransaction:
    """items: (qty, unit_price, discount) strings. Totals computed as NS16 does: per line, half-up."""
    store = store or blogger.stores[0]
    items = items or [("1", "10.00", "0")]
    lines = []
    subtotal = tax = Decimal("0")
    for n, (qty, price, discount) in enumerate(items, start=1):
        amount = line_amount(Decimal(qty), Decimal(price), Decimal(discount))
        lines.append(PosTransactionItem(product_name=f"Product {n}", sku=f"SKU{n}", qty=Decimal(qty),
                                        unit_price=Decimal(price), discount=Decimal(discount), line_total=amount))
        subtotal += amount
        tax += line_tax(amount, store.sst_rate)
    total = subtotal + tax
    n = next(_seq)
    txn = PosTransaction(blogger_id=blogger.id, store_id=store.id, member_name=member, status=status,
                         receipt_no=receipt_no or f"POS{created_at:%Y%m%d}{n:05d}", subtotal=subtotal,
                         tax_amount=tax, total=total, created_at=created_at, refund_of=refund_of,
                         paid_at=(paid_at or created_at) if status == "paid" else None)
    txn.items = lines
    if status == "paid":
        pays = payments if payments is not None else [{"method": "card", "amount": total, "reference_no": "CARD1"}]
        txn.payments = [PosPayment(**p) for p in pays]
    db.session.add(txn)
    db.session.flush()
    return txn


def make_kol(blogger: Blogger, name: str = "Farah Beauty", rate: str = "10.00", code: str | None = None) -> Kol:
    kol = Kol(blogger_id=blogger.id, code=code or f"K{next(_seq):03d}", name=name, commission_rate=Decimal(rate))
    db.session.add(kol)
    db.session.flush()
    return kol


def make_settlement(kol: Kol, period: str, sales: str, settled: date, *, paid_at: datetime | None = None,
                    reference: str | None = None) -> KolSettlement:
    rate = kol.commission_rate
    settlement = KolSettlement(
        blogger_id=kol.blogger_id, kol_id=kol.id, period=period, product_sales=Decimal(sales), rate_snapshot=rate,
        commission=(Decimal(sales) * rate / 100).quantize(Decimal("0.01")),
        status="paid" if paid_at else "generated", settled_date=settled, paid_at=paid_at,
        payment_reference=reference)
    db.session.add(settlement)
    db.session.flush()
    return settlement


@pytest.fixture
def factories():
    """The module itself, so tests read ``factories.make_sale(...)``."""
    import tests.factories as module

    return module


def make_connected_blogger(company=None, **kw) -> Blogger:
    """A blogger whose credential points at one of the simulator's demo companies (default: healthy)."""
    from portal.credentials import set_credential
    from tests.plugin_simulator import HEALTHY

    company = company or HEALTHY
    blogger = make_blogger(**kw)
    set_credential(blogger, company.name, company.key, actor=None)
    db.session.commit()
    return blogger


def run_queue(redis_conn) -> None:
    """Run every queued job in this process (RQ SimpleWorker, burst) on the real Redis."""
    from rq import SimpleWorker

    from portal.queue import get_queue

    SimpleWorker([get_queue()], connection=redis_conn).work(burst=True)
