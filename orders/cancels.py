"""Cancels: eligibility on the server, the request upstream in batches; the refund comes
when polling sees Canceled or Partial (Order.finish), never from the request itself."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from orders.errors import INCORRECT_ORDER, Refusal
from orders.errors import NOT_ELIGIBLE_CANCEL as NOT_ELIGIBLE
from orders.models import Order, OrderEvent, provider_batches
from panel.models import User
from providers.client import ProviderError
from providers.models import Provider

log = logging.getLogger(__name__)


def request_cancel(user: User, order_id: object) -> None:
    order = Order.objects.for_customer(user.pk).find(order_id)
    if order is None:
        raise Refusal(INCORRECT_ORDER)
    if not order.service.cancel or order.cancel_requested_at is not None:
        raise Refusal(NOT_ELIGIBLE)
    if order.status == Order.Status.QUEUED and _cancel_before_sending(order, user):
        return
    if order.status in Order.POLLED and order.upstream_id is not None:
        upstream = order.route.provider_service if order.route else None
        if upstream is not None and not upstream.cancel:
            raise Refusal(NOT_ELIGIBLE)
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
    rows = Order.objects.filter(cancel_requested_at__isnull=False, cancel_sent_at__isnull=True,
                                status__in=Order.POLLED, upstream_id__isnull=False).claim(
        limit, "provider_id", "upstream_id", order_by="cancel_requested_at",
        cancel_sent_at=now)
    for provider, batch in provider_batches(rows):
        _send_batch(provider, [(pk, upstream_id) for pk, _, upstream_id in batch])
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
