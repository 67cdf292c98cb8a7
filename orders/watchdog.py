"""Orders without progress past the thresholds in settings are flagged for staff."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders.models import Order, OrderEvent, Refill

STUCK_SENDING = ("stuck while sending: the worker may have died after the request went out, "
                 "so the outcome is unknown")


def run_watchdog() -> dict[str, int]:
    now = timezone.now()
    sending_cutoff = now - timedelta(minutes=settings.WATCHDOG_SUBMITTING_MINUTES)
    parked = Order.objects.filter(status=Order.Status.SUBMITTING,
                                  submitted_at__lt=sending_cutoff).update(
        status=Order.Status.NEEDS_ATTENTION, error=STUCK_SENDING, flagged_at=now,
        flag_reason=STUCK_SENDING)
    queued = Order.objects.filter(
        status=Order.Status.QUEUED, flagged_at__isnull=True,
        next_check_at__lt=now - timedelta(minutes=settings.WATCHDOG_QUEUED_MINUTES),
    ).update(flagged_at=now, flag_reason="queued but not sent: is the worker running?")
    stalled = Order.objects.filter(
        status__in=Order.POLLED, flagged_at__isnull=True,
        last_progress_at__lt=now - timedelta(hours=settings.WATCHDOG_STALLED_HOURS),
    ).update(flagged_at=now, flag_reason=f"no progress for {settings.WATCHDOG_STALLED_HOURS}h")
    refills = Refill.objects.filter(status=Refill.Status.SUBMITTING,
                                    submitted_at__lt=sending_cutoff).update(
        status=Refill.Status.NEEDS_ATTENTION, error=STUCK_SENDING, flagged_at=now,
        flag_reason=STUCK_SENDING)
    return {"parked": parked, "queued": queued, "stalled": stalled, "refills": refills,
            "refills_flagged": flag_stalled_refills(now)}


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
