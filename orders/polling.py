"""Polling upstreams for order and refill statuses, in batches of 100 per provider.

Due rows are claimed by pushing their next_check_at forward under SKIP LOCKED, so two
pollers never ask about the same order at once; applying a reply is compare-and-set, so a
replayed or late reply changes nothing.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from orders.models import Order, Refill, provider_batches
from providers.client import Client, OrderStatus, ProviderError, RefillState

log = logging.getLogger(__name__)
# A claimed row is not due again before this, should its poller die mid-batch.
LEASE = timedelta(minutes=5)


def check_delay(age: timedelta) -> timedelta:
    """Check about every tenth of an order's age, within [first, max], with ±20% jitter so
    orders placed together do not stay in lockstep."""
    first = float(settings.POLL_FIRST_DELAY)
    seconds = min(float(settings.POLL_MAX_DELAY), max(first, age.total_seconds() / 10))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))  # noqa: S311


@dataclass
class PollStats:
    requests: int = 0
    orders: int = 0
    changed: int = 0
    errors: int = 0
    per_provider: dict[int, int] = field(default_factory=dict)


def claim_due_orders(limit: int) -> list[tuple[Any, ...]]:
    """(order id, provider id, upstream id) of due orders, leased to this poller."""
    now = timezone.now()
    # due_for_check() only selects orders with an upstream id and so a provider.
    return Order.objects.due_for_check(now).claim(limit, "provider_id", "upstream_id",
                                                  next_check_at=now + LEASE)


def poll_orders(limit: int = 2000) -> PollStats:
    stats = PollStats()
    clients: dict[int, Client] = {}
    for provider, rows in provider_batches(claim_due_orders(limit)):
        client = clients.setdefault(provider.pk, provider.client())
        chunk = [(pk, upstream_id) for pk, _, upstream_id in rows]
        try:
            replies = client.statuses([upstream_id for _, upstream_id in chunk])
        except ProviderError as exc:
            log.warning("status poll of %s failed: %s", provider, exc)
            stats.errors += 1
            continue  # the lease makes them due again later
        stats.requests += 1
        stats.per_provider[provider.pk] = stats.per_provider.get(provider.pk, 0) + 1
        stats.changed += apply_replies(chunk, replies)
        stats.orders += len(chunk)
    return stats


def apply_replies(chunk: list[tuple[int, int]],
                  replies: dict[int, OrderStatus | ProviderError]) -> int:
    """Apply one batch in a constant number of queries, but for orders that end with a
    refund or end a drip-feed run (each its own small transaction)."""
    now = timezone.now()
    orders = Order.objects.select_related("service").in_bulk([pk for pk, _ in chunk])
    updates: list[tuple[Order, dict[str, Any]]] = []
    finishing = []
    for pk, upstream_id in chunk:
        order, reply = orders.get(pk), replies.get(upstream_id)
        if order is None or order.status not in Order.POLLED:
            continue
        if not isinstance(reply, OrderStatus):
            updates.append((order, {"next_check_at": _next_check(order, now),
                                    "checks": order.checks + 1}))
            if reply is not None:
                log.info("order %s: upstream says %s", pk, reply.message)
            continue
        fields = order.fields_from_reply(reply, now, _next_check(order, now))
        if _settles_alone(order, fields["status"]):
            finishing.append((order, fields, reply.remains is not None))
        else:
            updates.append((order, fields))
    changed = _bulk_compare_and_set(updates)
    for order, fields, remains_known in finishing:
        changed += order.finish(fields, remains_known=remains_known)
    return changed


def _settles_alone(order: Order, status: str) -> bool:
    # Completed moves no money: it joins the batch's one UPDATE (a query per order there
    # made a batch of completions cost 100 queries). Partial and Canceled refund, and a
    # drip-feed run settles its parent: Order.finish does those in their own transaction.
    return status in Order.TERMINAL and (status != Order.Status.COMPLETED
                                         or order.parent_id is not None)


def _next_check(order: Order, now: datetime) -> datetime:
    return now + check_delay(now - (order.submitted_at or order.created_at))


_BULK_COLUMNS = ("status", "checks", "start_count", "remains", "upstream_charge",
                 "upstream_currency", "last_progress_at", "next_check_at", "finished_at")


def _bulk_compare_and_set(updates: list[tuple[Order, dict[str, Any]]]) -> int:
    """One UPDATE … FROM (VALUES …) for the whole batch, each row only if its status is
    still the one we read."""
    if not updates:
        return 0
    rows: list[str] = []
    params: list[Any] = []
    for order, fields in updates:
        values = [order.pk, order.status] + [fields.get(c, getattr(order, c)) for c in
                                             _BULK_COLUMNS]
        rows.append("(" + ", ".join(["%s"] * len(values)) + ")")
        params.extend(values)
    table = Order._meta.db_table
    casts = ("bigint", "varchar", "varchar", "integer", "bigint", "bigint", "numeric",
             "varchar", "timestamptz", "timestamptz", "timestamptz")
    names = ("id", "expected", *_BULK_COLUMNS)
    first_row = "(" + ", ".join(f"%s::{c}" for c in casts) + ")"
    values_sql = ", ".join([first_row, *rows[1:]])
    assignments = ", ".join(f"{c} = v.{c}" for c in _BULK_COLUMNS)
    sql = (f"UPDATE {table} AS o SET {assignments} FROM (VALUES {values_sql}) "  # noqa: S608
           f"AS v({', '.join(names)}) WHERE o.id = v.id AND o.status = v.expected")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


# --- refills -------------------------------------------------------------------------------

REFILL_STATES = {
    RefillState.PENDING: Refill.Status.PENDING,
    RefillState.IN_PROGRESS: Refill.Status.IN_PROGRESS,
    RefillState.COMPLETED: Refill.Status.COMPLETED,
    RefillState.REJECTED: Refill.Status.REJECTED,
}


def poll_refills(limit: int = 2000) -> int:
    now = timezone.now()
    rows = Refill.objects.filter(status__in=Refill.POLLED, next_check_at__lte=now,
                                 upstream_id__isnull=False).claim(
        limit, "provider_id", "upstream_id", next_check_at=now + LEASE)
    clients: dict[int, Client] = {}
    changed = 0
    for provider, batch in provider_batches(rows):
        client = clients.setdefault(provider.pk, provider.client())
        chunk = [(pk, upstream_id) for pk, _, upstream_id in batch]
        try:
            states = client.refill_statuses([upstream_id for _, upstream_id in chunk])
        except ProviderError as exc:
            log.warning("refill poll of %s failed: %s", provider, exc)
            continue
        changed += _apply_refill_states(chunk, states)
    return changed


def _apply_refill_states(chunk: list[tuple[int, int]],
                         states: dict[int, RefillState | ProviderError]) -> int:
    """One UPDATE per status the batch came back with (at most five), not one per refill."""
    by_status: dict[str | None, list[int]] = defaultdict(list)
    for pk, upstream_id in chunk:
        state = states.get(upstream_id)
        by_status[REFILL_STATES[state] if isinstance(state, RefillState) else None].append(pk)
    now, changed = timezone.now(), 0
    for status, pks in by_status.items():
        later = now + check_delay(LEASE)
        if status is None:  # no readable answer: ask again later
            changed += Refill.objects.filter(pk__in=pks).update(next_check_at=later)
            continue
        done = status in (Refill.Status.COMPLETED, Refill.Status.REJECTED)
        changed += Refill.objects.filter(pk__in=pks, status__in=Refill.POLLED).update(
            status=status, finished_at=now if done else None,
            next_check_at=None if done else later)
    return changed
