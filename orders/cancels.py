"""Cancels: eligibility on the server, the request upstream in batches; the refund comes
when polling sees Canceled or Partial (Order.finish), never from the request itself."""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from orders.errors import INCORRECT_ORDER, Refusal
from orders.errors import NOT_ELIGIBLE_CANCEL as NOT_ELIGIBLE
from orders.models import Order, OrderEvent
from panel.models import User
from providers.client import ProviderError
from providers.models import Provider

log = logging.getLogger(__name__)
BATCH = 100


# Why an order cannot be canceled now. The API answers each with the same NOT_ELIGIBLE
# text (clients match on it); the order page says which one in words.
CANCEL_NOT_OFFERED = "not_offered"
CANCEL_REQUESTED = "requested"
CANCEL_FINISHED = "finished"
CANCEL_IN_FLIGHT = "in_flight"
CANCEL_RUNS_STARTED = "runs_started"
CANCEL_RUN = "run"


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
    if Order.objects.filter(pk=order.pk, cancel_requested_at__isnull=True).update(
            cancel_requested_at=timezone.now()):
        order.log("cancel_requested", "", user.pk)
        transaction.on_commit(_kick)
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
    from orders.tasks import send_cancels

    send_cancels.delay()


def send_cancels(limit: int = 1000) -> int:
    now = timezone.now()
    with transaction.atomic():
        rows = list(Order.objects.filter(cancel_requested_at__isnull=False,
                                         cancel_sent_at__isnull=True,
                                         status__in=Order.POLLED)
                    .select_for_update(skip_locked=True)
                    .values_list("pk", "provider_id", "upstream_id")[:limit])
        Order.objects.filter(pk__in=[r[0] for r in rows]).update(cancel_sent_at=now)
    by_provider: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for pk, provider_id, upstream_id in rows:
        if provider_id is not None and upstream_id is not None:  # POLLED orders have both
            by_provider[provider_id].append((pk, upstream_id))
    for provider_id, items in by_provider.items():
        provider = Provider.objects.get(pk=provider_id)
        for start in range(0, len(items), BATCH):
            _send_batch(provider, items[start:start + BATCH])
    return len(rows)


def _send_batch(provider: Provider, items: list[tuple[int, int]]) -> None:
    try:
        results: dict[int, bool | ProviderError] = provider.client().cancel(
            [upstream_id for _, upstream_id in items])
    except ProviderError as exc:
        # cancel is never retried by itself: a person can ask again once it is clear.
        results = {upstream_id: exc for _, upstream_id in items}
    accepted = [pk for pk, upstream_id in items if results.get(upstream_id) is True]
    # Look soon at what was accepted: the refund follows the status.
    Order.objects.filter(pk__in=accepted).update(next_check_at=timezone.now())
    OrderEvent.objects.bulk_create(
        OrderEvent(order_id=pk, kind="cancel_sent" if pk in accepted else "cancel_failed",
                   message=_outcome(provider, results.get(upstream_id)))
        for pk, upstream_id in items)


def _outcome(provider: Provider, result: bool | ProviderError | None) -> str:
    if result is True:
        return f"cancel accepted by {provider}"
    if isinstance(result, ProviderError) and not result.definite:
        return f"cancel request to {provider} may not have arrived: {result.message}"
    why = result.message if isinstance(result, ProviderError) else "no answer"
    return f"cancel refused by {provider}: {why}"
