"""Orders without progress past the thresholds in settings are flagged for staff."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from orders.models import Order, Refill

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
        status=Refill.Status.NEEDS_ATTENTION, error=STUCK_SENDING)
    return {"parked": parked, "queued": queued, "stalled": stalled, "refills": refills}
