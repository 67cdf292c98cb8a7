"""Orders without progress past the thresholds in settings are flagged for staff.

Every move the watchdog makes writes the order's history (an OrderEvent saying why), as staff
actions do: staff reading an order must see who parked or flagged it, and for what.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderQuerySet, ParkPhase, Refill
from providers.client import longest_exchange_seconds

STUCK_SENDING = ("stuck while sending: the worker may have died after the request went out, "
                 "so the outcome is unknown")
NOT_SENT = "queued but not sent: is the worker running?"
NEVER_SENT = "claimed by a worker that stopped before sending it: back in the queue"
PUT_OFF = "put off by temporary upstream refusals: "
LIMIT = 1000  # per kind and run; the next run a minute later takes the rest
# Database work around a send (claim, load, commit) and clocks of worker hosts a little apart.
SLACK_SECONDS = 30


def submitting_threshold() -> timedelta:
    """How long an order may stay SUBMITTING while a live worker could still be sending it.

    A batch stamps submitted_at when it claims and again right before each order's request;
    it starts no request after DISPATCH_BATCH_SECONDS, and one request lasts at most
    longest_exchange_seconds (an `add` is never retried). So the last order of a batch is
    decided by then, and past it the worker holding the claim is dead or cut off: staff
    should see the order now rather than after a fixed 10 minutes.
    WATCHDOG_SUBMITTING_SECONDS overrides the derived value."""
    override = settings.WATCHDOG_SUBMITTING_SECONDS
    if override is not None:
        return timedelta(seconds=override)
    send = longest_exchange_seconds(settings.PROVIDER_CONNECT_TIMEOUT,
                                    settings.PROVIDER_READ_TIMEOUT)
    return timedelta(seconds=settings.DISPATCH_BATCH_SECONDS + send + SLACK_SECONDS)


def run_watchdog() -> dict[str, int]:
    now = timezone.now()
    sending_cutoff = now - submitting_threshold()
    # A refill sweep sends one request per provider and hundred, not bounded in time: it
    # keeps a fixed, longer threshold.
    refill_cutoff = now - timedelta(minutes=settings.WATCHDOG_REFILL_SUBMITTING_MINUTES)
    queued_cutoff = now - timedelta(minutes=settings.WATCHDOG_QUEUED_MINUTES)
    stalled_cutoff = now - timedelta(hours=settings.WATCHDOG_STALLED_HOURS)
    queued = Order.objects.filter(status=Order.Status.QUEUED, flagged_at__isnull=True,
                                  next_check_at__lt=queued_cutoff)
    refills = Refill.objects.filter(status=Refill.Status.SUBMITTING,
                                    submitted_at__lt=refill_cutoff).update(
        status=Refill.Status.NEEDS_ATTENTION, error=STUCK_SENDING, flagged_at=now,
        flag_reason=STUCK_SENDING)
    return {
        "parked": _park_stuck_sends(sending_cutoff, now),
        "requeued": _requeue_unsent(sending_cutoff, now),
        "queued": _flag(queued.filter(deferrals=0), now, NOT_SENT)
        + _flag(queued.filter(deferrals__gt=0), now, Concat(Value(PUT_OFF), F("error"))),
        # A drip-feed the panel runs has no upstream order: its runs are watched instead.
        "stalled": _flag(Order.objects.filter(
            status__in=Order.POLLED, flagged_at__isnull=True, upstream_id__isnull=False,
            last_progress_at__lt=stalled_cutoff), now,
            f"no progress for {settings.WATCHDOG_STALLED_HOURS}h"),
        "refills": refills,
        "refills_flagged": flag_stalled_refills(now),
    }


def _requeue_unsent(cutoff: datetime, now: datetime) -> int:
    """SUBMITTING too long without a request ever leaving under this claim (sent_to is set
    right before one does): the worker died holding it. Back to the queue, claim token
    cleared, so that worker can never send it, should it be alive after all."""
    rows = Order.objects.filter(status=Order.Status.SUBMITTING, submitted_at__lt=cutoff,
                                sent_to__isnull=True).claim(
        LIMIT, order_by="submitted_at", status=Order.Status.QUEUED, claim_token=None,
        next_check_at=now, error=NEVER_SENT)
    OrderEvent.objects.bulk_create(OrderEvent(order_id=pk, kind="requeued", message=NEVER_SENT)
                                   for pk, in rows)
    return len(rows)


def _park_stuck_sends(cutoff: datetime, now: datetime) -> int:
    """SUBMITTING too long with a request out: it may have been bought, so staff decide.
    Clearing the claim token makes sure the worker that held it can never send it after all."""
    rows = Order.objects.filter(status=Order.Status.SUBMITTING, submitted_at__lt=cutoff,
                                sent_to__isnull=False).claim(
        LIMIT, "parent_id", "run_number", order_by="submitted_at",
        status=Order.Status.NEEDS_ATTENTION, error=STUCK_SENDING, flagged_at=now,
        flag_reason=STUCK_SENDING, claim_token=None, parked_at=now,
        park_phase=ParkPhase.WORKER_LOST, park_http_status=None, park_reply="")
    events = [OrderEvent(order_id=pk, kind="needs_attention", message=STUCK_SENDING)
              for pk, _, _ in rows]
    for _, parent_id, run_number in rows:
        if parent_id is not None:
            reason = f"run {run_number} needs attention: {STUCK_SENDING}"
            Order.objects.filter(pk=parent_id).update(flagged_at=now, flag_reason=reason)
            events.append(OrderEvent(order_id=parent_id, kind="flagged", message=reason))
    OrderEvent.objects.bulk_create(events)
    return len(rows)


def _flag(orders: OrderQuerySet, now: datetime, reason: Any) -> int:
    rows = orders.claim(LIMIT, order_by="id", flagged_at=now, flag_reason=reason)
    if rows:
        # The reason may be an expression (it quotes each order's error): read back what it
        # became, for the history.
        written = dict(Order.objects.filter(pk__in=[pk for pk, in rows])
                       .values_list("pk", "flag_reason"))
        OrderEvent.objects.bulk_create(OrderEvent(order_id=pk, kind="flagged",
                                                  message=written[pk]) for pk, in rows)
    return len(rows)


def flag_stalled_refills(now: datetime) -> int:
    """Flag refills that stopped moving, once each, saying why on the refill and the order:
    queued but not sent (a backoff keeps next_check_at ahead, so only a dead worker leaves
    it behind), or sent and without a status change past WATCHDOG_REFILL_STALLED_HOURS."""
    hours = settings.WATCHDOG_REFILL_STALLED_HOURS
    unflagged = Refill.objects.filter(flagged_at__isnull=True)
    queued = unflagged.filter(
        status=Refill.Status.QUEUED,
        next_check_at__lt=now - timedelta(minutes=settings.WATCHDOG_QUEUED_MINUTES))
    stalled = unflagged.filter(status__in=Refill.POLLED).annotate(
        moved=Coalesce("last_progress_at", "submitted_at")).filter(
        moved__lt=now - timedelta(hours=hours))
    rows = [(pk, order_id, "queued but not sent: is the worker running?")
            for pk, order_id in queued.values_list("pk", "order_id")]
    rows += [(pk, order_id, f"no progress for {hours}h" + (f" (last error: {error})"
                                                            if error else ""))
             for pk, order_id, error in stalled.values_list("pk", "order_id", "error")]
    by_reason: dict[str, list[int]] = defaultdict(list)
    for pk, _, reason in rows:
        by_reason[reason].append(pk)
    flagged = 0
    with transaction.atomic():
        for reason, pks in by_reason.items():
            flagged += unflagged.filter(pk__in=pks).update(flagged_at=now, flag_reason=reason)
        OrderEvent.objects.bulk_create(
            OrderEvent(order_id=order_id, kind="refill_flagged",
                       message=f"refill #{pk}: {reason}") for pk, order_id, reason in rows)
    return flagged
