"""Cancels: eligibility on the server, the request upstream in batches; the refund comes
when polling sees Canceled or Partial (Order.finish), never from the request itself."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orders.errors import INCORRECT_ORDER, Refusal
from orders.errors import NOT_ELIGIBLE_CANCEL as NOT_ELIGIBLE
from orders.models import Order, OrderEvent, kick, provider_batches
from panel.models import User
from providers.client import ProviderError
from providers.models import Provider

log = logging.getLogger(__name__)
# A definite refusal is asked again after this, doubling each time, CANCEL_MAX_ATTEMPTS in all.
RETRY_AFTER = timedelta(minutes=2)


# Why an order cannot be canceled now. The API answers each with the same NOT_ELIGIBLE
# text (clients match on it); the order page says which one in words.
CANCEL_NOT_OFFERED = "not_offered"
CANCEL_REQUESTED = "requested"
CANCEL_FINISHED = "finished"
CANCEL_IN_FLIGHT = "in_flight"
CANCEL_RUNS_STARTED = "runs_started"
CANCEL_RUN = "run"
CANCEL_NOT_SUPPORTED = "not_supported"  # the upstream it was bought from has no cancel

NO_CANCEL_UPSTREAM = "the provider takes no cancel requests"


def cancel_obstacle(order: Order) -> str:
    """What stops a cancel of this order now ("" when nothing does). Needs `order.route`
    with its provider_service loaded (OrderQuerySet.find does it) to avoid a query."""
    if order.parent_id is not None:
        return CANCEL_RUN
    if not order.service.cancel:
        return CANCEL_NOT_OFFERED
    if order.is_terminal:
        return CANCEL_FINISHED
    if order.cancel_requested_at is not None:
        return CANCEL_REQUESTED
    if order.status == Order.Status.QUEUED:
        return ""  # not sent yet: canceled here and refunded at once
    if order.status not in Order.POLLED:
        return CANCEL_IN_FLIGHT  # being sent, or its send's outcome is unknown
    if order.upstream_id is None:
        return CANCEL_RUNS_STARTED  # a drip-feed the panel runs: runs are already out
    upstream = order.route.provider_service if order.route else None
    if upstream is not None and not upstream.cancel:
        return CANCEL_NOT_OFFERED
    if order.provider is not None and not order.provider.can_cancel:
        return CANCEL_NOT_SUPPORTED
    return ""


def cancel_refusal(order: Order) -> str:
    """The API's answer: why this order cannot be canceled now, or "" when it can."""
    return NOT_ELIGIBLE if cancel_obstacle(order) else ""


def request_cancel(user: User, order_id: object) -> None:
    order = Order.objects.for_customer(user.pk).find(order_id)
    if order is None:
        raise Refusal(INCORRECT_ORDER)
    refusal = cancel_refusal(order)
    if refusal:
        raise Refusal(refusal)
    if order.status == Order.Status.QUEUED:
        if _cancel_before_sending(order, user):
            return
        raise Refusal(NOT_ELIGIBLE)  # claimed for sending since we read it
    now = timezone.now()
    if Order.objects.filter(pk=order.pk, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, cancel_due_at=now, cancel_sent_at=None,
            cancel_attempts=0, cancel_error=""):
        order.log("cancel_requested", "", user.pk)
        transaction.on_commit(_kick, robust=True)
        return
    raise Refusal(NOT_ELIGIBLE)


def _cancel_before_sending(order: Order, user: User) -> bool:
    """Not sent yet: cancel here and refund it all at once."""
    with transaction.atomic():
        if not order.compare_and_set(Order.Status.QUEUED, status=Order.Status.CANCELED,
                                     remains=order.charged_units, finished_at=timezone.now(),
                                     next_check_at=None, cancel_requested_at=timezone.now()):
            return False
        order.log("canceled", "canceled before it was sent", user.pk)
        order.refund(order.charge, "canceled before it was sent")
    return True


def _kick() -> None:
    kick("orders.tasks.send_cancels")


def send_cancels(limit: int = 1000) -> int:
    now = timezone.now()
    due = Q(cancel_due_at__isnull=True) | Q(cancel_due_at__lte=now)
    rows = Order.objects.filter(due, cancel_requested_at__isnull=False,
                                cancel_sent_at__isnull=True, status__in=Order.POLLED,
                                upstream_id__isnull=False).claim(
        limit, "provider_id", "upstream_id", "cancel_attempts",
        order_by="cancel_requested_at", cancel_sent_at=now)
    for provider, batch in provider_batches(rows):
        _send_batch(provider, [(pk, upstream_id, attempts)
                               for pk, _, upstream_id, attempts in batch], now)
    return len(rows)


def _send_batch(provider: Provider, items: list[tuple[int, int, int]], sent_at: Any) -> None:
    """items: (order id, upstream id, cancel attempts so far); sent_at is the claim's mark,
    so a late worker cannot record over a newer claim."""
    outcome = _Outcome(provider, sent_at)
    if not provider.can_cancel:
        # Asked for before the panel learned it has none: they end here, unsent.
        for pk, _, _ in items:
            outcome.unsupported(pk, NO_CANCEL_UPSTREAM)
        outcome.save()
        return
    try:
        results: dict[int, bool | ProviderError] = provider.client().cancel(
            [upstream_id for _, upstream_id, _ in items])
    except ProviderError as exc:
        provider.refused_key(exc, "a cancel request")
        results = {upstream_id: exc for _, upstream_id, _ in items}
    for pk, upstream_id, attempts in items:
        outcome.add(pk, attempts, results.get(upstream_id))
    outcome.save()


_Group = tuple[str, tuple[tuple[str, Any], ...]]


class _Outcome:
    """What one cancel batch came to, written with one UPDATE per kind of outcome and
    message (a batch's failures mostly share one) and the events in one INSERT."""

    def __init__(self, provider: Provider, sent_at: Any) -> None:
        self.provider, self.sent_at, self.now = provider, sent_at, timezone.now()
        self.updates: dict[_Group, list[int]] = defaultdict(list)
        self.events: list[OrderEvent] = []

    def add(self, pk: int, attempts: int, result: bool | ProviderError | None) -> None:
        if result is True:
            # Look soon at what was accepted: the refund follows the status.
            self._update(pk, "cancel_sent", f"cancel accepted by {self.provider}",
                         next_check_at=self.now, cancel_error="")
        elif result is False:
            self._refused(pk, attempts + 1, "the upstream did not accept the cancel")
        elif isinstance(result, ProviderError) and self.provider.learn_unsupported("cancel",
                                                                                   result):
            self.unsupported(pk, f"{NO_CANCEL_UPSTREAM} ({result.message})")
        elif isinstance(result, ProviderError) and result.definite:
            self._refused(pk, attempts + 1, result.message)
        else:
            # It may have reached the upstream: asking again could act twice, and polling
            # will show a cancel that went through. Staff look; nothing resends it.
            why = result.message if isinstance(result, ProviderError) else "no answer"
            reason = f"cancel may have reached the upstream ({self.provider}): {why}"
            self._update(pk, "cancel_unknown", reason, cancel_error=why[:1000],
                         flagged_at=self.now, flag_reason=reason)
            self.events.append(OrderEvent(order_id=pk, kind="flagged", message=reason))

    def unsupported(self, pk: int, why: str) -> None:
        """The upstream has no cancel: the request ends, the order goes on, the customer
        reads that it did not go through, and the cancel is no longer offered."""
        self._update(pk, "cancel_failed", f"cancel refused by {self.provider}: {why}",
                     cancel_sent_at=None, cancel_due_at=None, cancel_requested_at=None,
                     cancel_error=why[:1000])

    def _refused(self, pk: int, attempts: int, why: str) -> None:
        text = f"cancel refused by {self.provider}: {why}"
        if attempts < settings.CANCEL_MAX_ATTEMPTS:
            due = self.now + RETRY_AFTER * 2 ** (attempts - 1)
            self._update(pk, "cancel_failed", f"{text}; asking again", cancel_sent_at=None,
                         cancel_due_at=due, cancel_attempts=attempts, cancel_error=why[:1000])
            return
        # Given up. The customer may ask again (request_cancel starts afresh): an upstream
        # refusal is often about the moment (the order is being started, its API is down),
        # and on upstream panels, too, a refused cancel leaves the button there. Each new
        # request gets the same bounded attempts, so only the customer's asking (and the
        # API's rate limit) decides how often the upstream is asked.
        reason = f"cancel given up after {attempts} attempts: {why}"
        self._update(pk, "cancel_refused", text, cancel_sent_at=None, cancel_due_at=None,
                     cancel_requested_at=None, cancel_attempts=attempts,
                     cancel_error=why[:1000], flagged_at=self.now, flag_reason=reason)
        self.events.append(OrderEvent(order_id=pk, kind="flagged", message=reason))

    def _update(self, pk: int, kind: str, message: str, **fields: Any) -> None:
        self.updates[(kind, tuple(sorted(fields.items())))].append(pk)
        self.events.append(OrderEvent(order_id=pk, kind=kind, message=message))

    def save(self) -> None:
        with transaction.atomic():
            for (_, fields), pks in self.updates.items():
                Order.objects.filter(pk__in=pks, cancel_sent_at=self.sent_at).update(
                    **dict(fields))
            OrderEvent.objects.bulk_create(self.events)
