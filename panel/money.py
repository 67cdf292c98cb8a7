"""Money is Decimal with five places (API v2 shows "0.27819" and "100.84292"), decided here once.

Charges round half up; a price per 1000 rounds up, so that rounding never eats the margin;
refunds round down, so that rounding can never pay a customer back more than they paid.
"""

from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

MONEY_PLACES = 5
MONEY_DIGITS = 18
ZERO = Decimal("0.00000")
SMALLEST = Decimal("0.00001")
_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)


def quantize_money(value: Decimal) -> Decimal:
    return value.quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def quantize_rate(value: Decimal) -> Decimal:
    return value.quantize(_QUANTUM, rounding=ROUND_UP)


def quantize_refund(value: Decimal) -> Decimal:
    return value.quantize(_QUANTUM, rounding=ROUND_DOWN)


def format_money(value: Decimal) -> str:
    """As API v2 writes money: a string with five decimals."""
    return f"{quantize_money(value):.{MONEY_PLACES}f}"
