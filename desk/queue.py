"""The attention queue: what staff must look at, counted for the navigation's badge and
listed on the desk's first page."""

from __future__ import annotations

from orders.models import Order, Refill


def attention_count() -> int:
    return Order.objects.needing_attention().count() + Refill.objects.needing_attention().count()
