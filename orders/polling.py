"""Polling upstreams for order and refill statuses, in batches of 100 per provider.

Due rows are claimed by pushing their next_check_at forward under SKIP LOCKED, so two
pollers never ask about the same order at once; applying a reply is compare-and-set, so a
replayed or late reply changes nothing.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from orders.models import Order, Refill
from providers.client import OrderStatus, ProviderError, RefillState
from providers.models import Provider

log = logging.getLogger(__name__)
BATCH = 100
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


def claim_due_orders(limit: int) -> list[tuple[int, int, int]]:
    """(order id, provider id, upstream id) of due orders, leased to this poller."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(Order.objects.due_for_check(now).order_by("next_check_at")
                    .select_for_update(skip_locked=True)
                    .values_list("pk", "provider_id", "upstream_id")[:limit])
        Order.objects.filter(pk__in=[r[0] for r in rows]).update(next_check_at=now + LEASE)
    # due_for_check() only selects orders with an upstream id and so a provider.
    return [(pk, provider_id, upstream_id) for pk, provider_id, upstream_id in rows
            if provider_id is not None and upstream_id is not None]


def poll_orders(limit: int = 2000) -> PollStats:
    stats = PollStats()
    by_provider: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for pk, provider_id, upstream_id in claim_due_orders(limit):
        by_provider[provider_id].append((pk, upstream_id))
    providers = Provider.objects.in_bulk(list(by_provider))
    for provider_id, rows in by_provider.items():
        client = providers[provider_id].client()
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            try:
                replies = client.statuses([upstream_id for _, upstream_id in chunk])
            except ProviderError as exc:
                log.warning("status poll of %s failed: %s", providers[provider_id], exc)
                stats.errors += 1
                continue  # the lease makes them due again later
            stats.requests += 1
            stats.per_provider[provider_id] = stats.per_provider.get(provider_id, 0) + 1
            stats.changed += apply_replies(chunk, replies)
            stats.orders += len(chunk)
    return stats


def apply_replies(chunk: list[tuple[int, int]],
                  replies: dict[int, OrderStatus | ProviderError]) -> int:
    """Apply one batch in a constant number of queries, but for orders that end with a
    refund or end a drip-feed run (each its own small transaction)."""
    now = timezone.now()
    # provider and parent for the cost difference (Order.fields_from_reply), in the same query.
    orders = Order.objects.select_related("service", "provider", "parent").in_bulk(
        [pk for pk, _ in chunk])
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
    _check_currencies(orders.values(), replies, dict(chunk))
    changed = _bulk_compare_and_set(updates)
    for order, fields, remains_known in finishing:
        changed += order.finish(fields, remains_known=remains_known)
    return changed


def _check_currencies(orders: Iterable[Order], replies: dict[int, OrderStatus | ProviderError],
                      upstream_ids: dict[int, int]) -> None:
    """Pause buying from a provider whose replies name another currency than configured:
    at most one check that writes per provider in the batch, whatever its size."""
    seen: set[int] = set()
    for order in orders:
        reply = replies.get(upstream_ids[order.pk])
        provider = order.provider
        if (provider is None or provider.pk in seen or not isinstance(reply, OrderStatus)
                or provider.bills_in(reply.currency)):
            continue
        seen.add(provider.pk)
        provider.check_reported_currency(reply.currency, f"the status of {order}")


def _settles_alone(order: Order, status: str) -> bool:
    # Completed moves no money: it joins the batch's one UPDATE (a query per order there
    # made a batch of completions cost 100 queries). Partial and Canceled refund, and a
    # drip-feed run settles its parent: Order.finish does those in their own transaction.
    return status in Order.TERMINAL and (status != Order.Status.COMPLETED
                                         or order.parent_id is not None)


def _next_check(order: Order, now: datetime) -> datetime:
    return now + check_delay(now - (order.submitted_at or order.created_at))


_BULK_COLUMNS = ("status", "checks", "start_count", "remains", "upstream_charge",
                 "upstream_currency", "last_progress_at", "next_check_at", "finished_at",
                 "cost_difference")


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
             "varchar", "timestamptz", "timestamptz", "timestamptz", "numeric")
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
    with transaction.atomic():
        rows = list(Refill.objects.filter(status__in=Refill.POLLED, next_check_at__lte=now)
                    .order_by("next_check_at").select_for_update(skip_locked=True)
                    .values_list("pk", "provider_id", "upstream_id")[:limit])
        Refill.objects.filter(pk__in=[r[0] for r in rows]).update(next_check_at=now + LEASE)
    by_provider: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for pk, provider_id, upstream_id in rows:
        if upstream_id is not None:
            by_provider[provider_id].append((pk, upstream_id))
    changed = 0
    for provider_id, items in by_provider.items():
        changed += _poll_refill_batches(Provider.objects.get(pk=provider_id), items)
    return changed


def _poll_refill_batches(provider: Provider, items: list[tuple[int, int]]) -> int:
    client, changed = provider.client(), 0
    for start in range(0, len(items), BATCH):
        chunk = items[start:start + BATCH]
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
