"""Money helpers: Decimal end to end, half-up to the sen, per line then summed."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SEN = Decimal("0.01")
FIVE_SEN = Decimal("0.05")
ZERO = Decimal("0.00")


def round_money(value: Decimal) -> Decimal:
    return value.quantize(SEN, rounding=ROUND_HALF_UP)


def round_cash(value: Decimal) -> Decimal:
    """Malaysia's 5-sen rounding of a cash total (half-up: .x3 → .x5, .x2 → .x0)."""
    return ((value / FIVE_SEN).quantize(Decimal("1"), rounding=ROUND_HALF_UP) * FIVE_SEN).quantize(SEN)


def line_tax(amount: Decimal, rate_percent: Decimal) -> Decimal:
    return round_money(amount * rate_percent / Decimal(100))


def line_amount(qty: Decimal, unit_price: Decimal, discount: Decimal) -> Decimal:
    return round_money(qty * unit_price - discount)
