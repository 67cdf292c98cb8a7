"""Filters for the customer's order pages."""

from datetime import timedelta

from django import template

from orders.views.history import duration_text

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A service's average time in words, or "Not enough data"."""
    return duration_text(value)
