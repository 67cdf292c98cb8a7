"""Filters for the customer's order pages."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from orders.views.history import duration_text, rate_text

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A service's average time in words, or "Not enough data"."""
    return duration_text(value)


@register.filter
def rate(value: Decimal | None) -> str:
    """A price per 1000 without the trailing zeros of five places: 2.405, 12.50, 0.0065."""
    return rate_text(value)


@register.simple_tag
def category_options(categories: list[dict[str, Any]], selected: int | None) -> SafeString:
    """The <option>s of a category filter. A catalog has a hundred categories or more, and
    a template loop spends about a millisecond on them per page; each option's markup is
    made once and kept with the (cached) category list."""
    options = []
    for category in categories:
        if "option" not in category:
            category["option"] = format_html('<option value="{}">{}</option>',
                                             category["pk"], category["name"])
        if category["pk"] == selected:
            options.append(format_html('<option value="{}" selected>{}</option>',
                                       category["pk"], category["name"]))
        else:
            options.append(category["option"])
    return mark_safe("".join(options))  # noqa: S308 (each part built by format_html)
