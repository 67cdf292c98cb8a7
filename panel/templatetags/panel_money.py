"""`{{ amount|money }}` → "100.50 USD": money as customers read it, in the panel's currency."""

from decimal import Decimal

from django import template
from django.conf import settings

from panel.money import MONEY_PLACES, quantize_money

register = template.Library()


def money_text(value: Decimal) -> str:
    """Two decimals, more only where they carry a digit: 100.50, 0.27819, never 100.5 or
    100.84 for 100.84292 (a balance must not look larger or smaller than it is)."""
    text = f"{quantize_money(Decimal(value)):.{MONEY_PLACES}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{whole}.{fraction}"


@register.filter
def money(value: Decimal | int | str | None) -> str:
    if value is None or value == "":
        return ""
    return f"{money_text(Decimal(value))} {settings.PANEL_CURRENCY}"


@register.filter
def money_in(value: Decimal | int | str | None, currency: str) -> str:
    """`{{ amount|money_in:provider.currency }}`: money in another currency than the panel's
    (a provider's balance, say), written the same way."""
    if value is None or value == "":
        return ""
    return f"{money_text(Decimal(value))} {currency}"
