"""Polling upstreams for order and refill statuses, in batches of 100 per provider.

Due rows are claimed by pushing their next_check_at forward under SKIP LOCKED, so two
pollers never ask about the same order at once; applying a reply is compare-and-set, so a
replayed or late reply changes nothing.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from orders.models import Order, OrderEvent, Refill, provider_batches
from providers.client import Client, ErrorKind, OrderStatus, ProviderError, RefillState
from providers.models import Provider

log = logging.getLogger(__name__)
T = TypeVar("T")
# A claimed row is not due again before this, should its poller die mid-batch.
LEASE = timedelta(minutes=5)


def check_delay(age: timedelta) -> timedelta:
    """Check about every tenth of an order's age, within [first, max], with ±20% jitter so
    orders placed together do not stay in lockstep."""
    first = float(settings.POLL_FIRST_DELAY)
    seconds = min(float(settings.POLL_MAX_DELAY), max(first, age.total_seconds() / 10))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))  # noqa: S311


def failed_batch_delay(failures: int) -> timedelta:
    """When to ask again about a batch whose request failed as a whole for the `failures`th
    time in a row: POLL_FIRST_DELAY doubling, never past POLL_MAX_DELAY (the lease of five
    minutes must not decide it: a panel set to settle within a minute would wait five)."""
    first, most = float(settings.POLL_FIRST_DELAY), float(settings.POLL_MAX_DELAY)
    seconds = max(first, 1.0) * 2 ** min(max(failures - 1, 0), 30)
    return timedelta(seconds=min(most, seconds * random.uniform(0.8, 1.2)))  # noqa: S311


def record_batch_outcome(provider: Provider, model: type[Order] | type[Refill],
                         chunk: list[tuple[int, int]], asked: Asked[Any]) -> None:
    """After one provider batch of (pk, upstream id): keep the provider's streak of batches
    that got no answer at all, and back off what got none, which would otherwise wait out
    the lease. A good batch after a good batch writes nothing."""
    if asked.answers and provider.poll_failures:
        Provider.objects.filter(pk=provider.pk).update(poll_failures=0)
        provider.poll_failures = 0
    elif not asked.answers and asked.failure is not None:
        Provider.objects.filter(pk=provider.pk).update(poll_failures=F("poll_failures") + 1)
        provider.poll_failures += 1
    unanswered = [pk for pk, upstream_id in chunk if upstream_id not in asked.answers]
    if asked.failure is not None and unanswered:
        delay = failed_batch_delay(max(provider.poll_failures, 1))
        model.objects.filter(pk__in=unanswered, status__in=model.POLLED).update(
            next_check_at=timezone.now() + delay)


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
    timed_out: set[int] = set()
    # Each provider's batches are as long as its adapted size at the time they are cut, so
    # a timeout early in a sweep already shortens the rest of it.
    for provider, rows in provider_batches(claim_due_orders(limit), size=_status_batch_size):
        if provider.pk in timed_out:
            # Not asked again this sweep: its orders are due again after the provider's
            # backoff, not the whole lease.
            Order.objects.filter(pk__in=[pk for pk, _, _ in rows], status__in=Order.POLLED).update(
                next_check_at=timezone.now() + failed_batch_delay(max(provider.poll_failures, 1)))
            continue
        client = clients.setdefault(provider.pk, provider.client())
        chunk = [(pk, upstream_id) for pk, _, upstream_id in rows]
        asked = ask_in_halves(_measured(provider, client.statuses),
                              [upstream_id for _, upstream_id in chunk])
        provider.save_status_batch()
        stats.requests += asked.requests
        stats.per_provider[provider.pk] = stats.per_provider.get(provider.pk, 0) + asked.requests
        if asked.failure is not None:
            log.warning("status poll of %s failed: %s", provider, asked.failure)
            provider.refused_key(asked.failure, "a status check")
            stats.errors += 1
            if asked.failure.timed_out:
                timed_out.add(provider.pk)
        answered = [(pk, upstream_id) for pk, upstream_id in chunk if upstream_id in asked.answers]
        record_batch_outcome(provider, Order, chunk, asked)
        stats.changed += apply_replies(answered, asked.answers)
        stats.orders += len(answered)
    return stats


def _status_batch_size(provider: Provider) -> int:
    return provider.status_batch_size


def _measured(provider: Provider, fetch: Callable[[list[int]], dict[int, T]]
              ) -> Callable[[list[int]], dict[int, T]]:
    """`fetch`, timed: each status request's latency, or its timeout, adapts the provider's
    status batch size (Provider.adapt_status_batch)."""
    def timed(ids: list[int]) -> dict[int, T]:
        started = time.monotonic()
        try:
            answers = fetch(ids)
        except ProviderError as exc:
            if exc.timed_out:
                size = provider.adapt_status_batch(len(ids), None)
                log.warning("status of %d ids at %s timed out; batches of %d now", len(ids),
                            provider, size)
            raise
        provider.adapt_status_batch(len(ids), time.monotonic() - started)
        return answers

    return timed


# Whole-request errors that can be about one id in the list ("Incorrect order ID", or an
# upstream's own words): worth asking again in halves. Errors about the key, the account
# or the connection are the same for every id, so halving would only multiply them.
_MAY_BE_ONE_ID = (ErrorKind.INCORRECT_ORDER, ErrorKind.OTHER)


@dataclass
class Asked(Generic[T]):
    answers: dict[int, T | ProviderError] = field(default_factory=dict)
    requests: int = 0
    failure: ProviderError | None = None  # why some ids got no answer at all


def ask_in_halves(fetch: Callable[[list[int]], dict[int, T | ProviderError]],
                  ids: list[int]) -> Asked[T]:
    """Ask about `ids`; a definite error for the whole list that may be about one of its ids
    is asked again in halves, down to the single id, whose error is then its own. One bad id
    among n costs at most 2·ceil(log2 n) more requests, the budget here, so it can neither
    block the rest nor make a sweep ask without end; ids left over wait for the next one."""
    asked: Asked[T] = Asked()
    budget = 1 + 2 * math.ceil(math.log2(len(ids))) if len(ids) > 1 else 1
    pending = [ids] if ids else []
    while pending and asked.requests < budget:
        part = pending.pop()
        asked.requests += 1
        try:
            asked.answers.update(fetch(part))
        except ProviderError as exc:
            if not exc.definite or exc.kind not in _MAY_BE_ONE_ID:
                asked.failure = exc
                break
            if len(part) == 1:
                asked.answers[part[0]] = exc
                continue
            middle = len(part) // 2
            pending += [part[middle:], part[:middle]]
    if pending and asked.failure is None:
        asked.failure = ProviderError(ErrorKind.OTHER, "request budget spent halving a batch",
                                      definite=True)
    return asked


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
    failed: dict[str, list[Order]] = defaultdict(list)
    shortfalls: list[tuple[Order, str]] = []
    for pk, upstream_id in chunk:
        order, reply = orders.get(pk), replies.get(upstream_id)
        if order is None or order.status not in Order.POLLED:
            continue
        if not isinstance(reply, OrderStatus):
            message = reply.message if reply is not None else "no answer for this order"
            failed[message].append(order)
            updates.append((order, {"next_check_at": _next_check_after_error(order, now),
                                    "checks": order.checks + 1}))
            log.info("order %s: upstream says %s", pk, message)
            continue
        fields = order.fields_from_reply(reply, now, _next_check(order, now))
        if shortfall := order.new_upstream_shortfall(fields):
            shortfalls.append((order, shortfall))
        if _settles_alone(order, fields["status"]):
            finishing.append((order, fields, reply.remains))
        else:
            updates.append((order, fields))
    _check_currencies(orders.values(), replies, dict(chunk))
    changed = _bulk_compare_and_set(updates)
    _record_poll_errors(failed, now)
    _clear_poll_errors([o for o, f in updates if "status" in f] + [o for o, _, _ in finishing])
    for order, fields, reported_remains in finishing:
        changed += order.finish(fields, reported_remains=reported_remains)
    Order.flag_shortfalls(shortfalls)
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


def _next_check_after_error(order: Order, now: datetime) -> datetime:
    # Past the lease at least, and longer with each failure in a row (within the max delay).
    failures = order.poll_failures + 1
    delay = max(check_delay(now - (order.submitted_at or order.created_at)), LEASE) * failures
    return now + min(delay, timedelta(seconds=settings.POLL_MAX_DELAY))


def _record_poll_errors(failed: dict[str, list[Order]], now: datetime) -> None:
    """A status check that failed for this order alone is its own error: record it, and flag
    the order for staff once they have failed POLL_FLAG_AFTER_FAILURES times in a row.
    One UPDATE per distinct message (they are few), not one per order."""
    limit = settings.POLL_FLAG_AFTER_FAILURES
    to_flag: list[tuple[Order, str]] = []
    for message, orders in failed.items():
        Order.objects.filter(pk__in=[o.pk for o in orders]).update(
            poll_failures=F("poll_failures") + 1, poll_error=message[:1000])
        to_flag += [(o, f"status checks failed {o.poll_failures + 1} times in a row: {message}")
                    for o in orders if o.flagged_at is None and o.poll_failures + 1 >= limit]
    if not to_flag:
        return
    by_reason: dict[str, list[int]] = defaultdict(list)
    for order, reason in to_flag:
        by_reason[reason].append(order.pk)
    for reason, pks in by_reason.items():
        Order.objects.filter(pk__in=pks, flagged_at__isnull=True).update(
            flagged_at=now, flag_reason=reason)
    OrderEvent.objects.bulk_create(OrderEvent(order_id=o.pk, kind="flagged", message=reason)
                                   for o, reason in to_flag)


def _clear_poll_errors(answered: list[Order]) -> None:
    # Only when one of them had failed: a batch of good replies costs no query here.
    pks = [o.pk for o in answered if o.poll_failures or o.poll_error]
    if pks:
        Order.objects.filter(pk__in=pks).update(poll_failures=0, poll_error="")


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
                 "cost_difference", "upstream_quantity")


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
             "varchar", "timestamptz", "timestamptz", "timestamptz", "numeric", "bigint")
    names = ("id", "expected", *_BULK_COLUMNS)
    first_row = "(" + ", ".join(f"%s::{c}" for c in casts) + ")"
    values_sql = ", ".join([first_row, *rows[1:]])
    assignments = ", ".join(f"{c} = v.{c}" for c in _BULK_COLUMNS)
    sql = (f"UPDATE {table} AS o SET {assignments} FROM (VALUES {values_sql}) "  # noqa: S608
           f"AS v({', '.join(names)}) WHERE o.id = v.id AND o.status = v.expected "
           "RETURNING o.id, v.expected, o.status")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        changed = cursor.fetchall()
    # Every automatic move writes the order's history; one INSERT for the batch, and none
    # when no status moved (a batch of "still in progress" costs nothing more).
    OrderEvent.objects.bulk_create(
        OrderEvent(order_id=pk, kind="status", message=status_message(new))
        for pk, old, new in changed if old != new)
    return len(changed)


def status_message(status: str) -> str:
    return f"the upstream reports it {Order.CUSTOMER_STATUS[Order.Status(status)]}"


# --- refills -------------------------------------------------------------------------------

REJECTED_UPSTREAM = "rejected by the upstream"
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
        if not provider.reports_refills:
            changed += _stop_following([pk for pk, _ in chunk], provider.unsupported_learned)
            continue
        asked = ask_in_halves(client.refill_statuses, [upstream_id for _, upstream_id in chunk])
        if asked.failure is not None:
            log.warning("refill poll of %s failed: %s", provider, asked.failure)
            provider.refused_key(asked.failure, "a refill status check")
            if provider.learn_unsupported("refill_status", asked.failure):
                changed += _stop_following([pk for pk, _ in chunk], asked.failure.message)
                continue
        record_batch_outcome(provider, Refill, chunk, asked)
        changed += _apply_refill_states(
            [(pk, upstream_id) for pk, upstream_id in chunk if upstream_id in asked.answers],
            asked.answers)
    return changed


def _stop_following(pks: list[int], why: str) -> int:
    """Refills sent to an upstream that cannot say how they went: asking again cannot help,
    so they go to staff, who look upstream, instead of being polled forever."""
    reason = f"the provider reports no refill statuses ({why.strip()}): check it upstream"
    return Refill.objects.filter(pk__in=pks, status__in=Refill.POLLED).update(
        status=Refill.Status.NEEDS_ATTENTION, next_check_at=None, error=reason[:1000],
        flagged_at=timezone.now(), flag_reason=reason[:1000])


def _apply_refill_states(chunk: list[tuple[int, int]],
                         states: dict[int, RefillState | ProviderError]) -> int:
    """One UPDATE per status the batch came back with (at most five), and one per distinct
    error text, not one per refill."""
    by_status: dict[str, list[int]] = defaultdict(list)
    by_error: dict[str, list[int]] = defaultdict(list)
    for pk, upstream_id in chunk:
        state = states.get(upstream_id)
        if isinstance(state, RefillState):
            by_status[REFILL_STATES[state]].append(pk)
        else:
            by_error[state.message if state else "no answer for this refill"].append(pk)
    now, changed = timezone.now(), 0
    for message, pks in by_error.items():
        # Its own error (say, "Refill not found"): recorded, asked again later; the
        # watchdog flags a refill that stays without progress.
        changed += Refill.objects.filter(pk__in=pks, status__in=Refill.POLLED).update(
            error=f"status check: {message}"[:1000],
            next_check_at=now + min(max(check_delay(LEASE), LEASE * 2),
                                    timedelta(seconds=settings.POLL_MAX_DELAY)))
    for status, pks in by_status.items():
        done = status in (Refill.Status.COMPLETED, Refill.Status.REJECTED)
        moved = Case(When(~Q(status=status), then=Value(now)), default=F("last_progress_at"))
        changed += Refill.objects.filter(pk__in=pks, status__in=Refill.POLLED).update(
            status=status, finished_at=now if done else None, last_progress_at=moved,
            next_check_at=None if done else now + check_delay(LEASE),
            error=REJECTED_UPSTREAM if status == Refill.Status.REJECTED else "")
    return changed
