"""Filters for the customer's order pages."""

from datetime import timedelta
from decimal import Decimal

from django import template

from orders.views.history import duration_text

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A service's average time in words, or "Not enough data"."""
    return duration_text(value)


@register.filter
def rate(value: Decimal | None) -> str:
    """A price per 1000 without the trailing zeros of five places: 2.405, 12.50, 0.0065."""
    if value is None:
        return "—"
    text = f"{value:f}"
    whole, _dot, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(2, "0")
    return f"{whole}.{decimals}"
