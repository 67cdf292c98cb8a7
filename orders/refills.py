"""Refills: a customer asks, the server checks eligibility, a sweep sends them upstream in
batches and polling follows them (orders/polling.py)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.errors import INCORRECT_ORDER, Refusal
from orders.errors import NOT_ELIGIBLE_REFILL as NOT_ELIGIBLE
from orders.models import Order, Refill, provider_batches
from panel.models import User
from providers.client import ErrorKind, ProviderError
from providers.models import Provider

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(minutes=2)


def refill_refusal(order: Order) -> str:
    """Why this order cannot be refilled now, or "" when it can."""
    if not order.service.refill or order.status != Order.Status.COMPLETED:
        return NOT_ELIGIBLE
    if order.provider_id is None or order.upstream_id is None:
        return NOT_ELIGIBLE  # a drip-feed the panel ran itself has no single upstream order
    # The upstream service it was bought through must refill too, or the request could only
    # come back Rejected. As for cancels, an order whose route was deleted since is let
    # through: the upstream then decides, and a refill moves no money.
    upstream = order.route.provider_service if order.route else None
    if upstream is not None and not upstream.refill:
        return NOT_ELIGIBLE
    deadline = order.service.refill_deadline(order.finished_at)
    if deadline is not None and timezone.now() > deadline:
        return NOT_ELIGIBLE
    return ""


def request_refill(user: User, order_id: object) -> Refill:
    order = Order.objects.for_customer(user.pk).find(order_id)
    if order is None:
        raise Refusal(INCORRECT_ORDER)
    refusal = refill_refusal(order)
    if refusal:
        raise Refusal(refusal)
    assert order.provider_id is not None
    try:
        with transaction.atomic():
            refill = Refill.objects.create(order=order, user=user, provider_id=order.provider_id,
                                           next_check_at=timezone.now())
            order.log("refill_requested", f"refill #{refill.pk}", user.pk)
            transaction.on_commit(_kick)
    except IntegrityError:
        raise Refusal(NOT_ELIGIBLE) from None  # one is already pending
    return refill


def _kick() -> None:
    from orders.tasks import send_refills

    send_refills.delay()


def claim_queued(limit: int = 500) -> list[tuple[Any, ...]]:
    """(refill id, provider id, order id) of queued refills, now SUBMITTING."""
    now = timezone.now()
    return Refill.objects.filter(status=Refill.Status.QUEUED, next_check_at__lte=now).claim(
        limit, "provider_id", "order_id", status=Refill.Status.SUBMITTING, submitted_at=now)


def send_refills() -> int:
    rows = claim_queued()
    # The upstream order ids, in one query for the sweep (a join in the claim would lock
    # the orders too).
    upstream_ids = dict(Order.objects.filter(pk__in=[row[2] for row in rows])
                        .values_list("pk", "upstream_id"))
    for provider, batch in provider_batches(rows):
        _send_batch(provider, [(pk, upstream_ids.get(order_id) or 0)
                               for pk, _, order_id in batch])
    return len(rows)


def _send_batch(provider: Provider, items: list[tuple[int, int]]) -> None:
    """items: (refill id, upstream order id)."""
    try:
        results = provider.client().refills([upstream_id for _, upstream_id in items])
    except ProviderError as exc:
        if exc.definite:  # nothing reached the upstream: try the whole batch again later
            Refill.objects.filter(pk__in=[pk for pk, _ in items]).update(
                status=Refill.Status.QUEUED, next_check_at=timezone.now() + RETRY_AFTER)
            return
        for pk, _ in items:
            _record(pk, exc)
        return
    missing = ProviderError(ErrorKind.BAD_REPLY, "no answer for this refill", definite=False)
    for pk, upstream_order_id in items:
        _record(pk, results.get(upstream_order_id, missing))


def _record(refill_id: int, result: int | ProviderError) -> None:
    now = timezone.now()
    submitting = Refill.objects.filter(pk=refill_id, status=Refill.Status.SUBMITTING)
    if isinstance(result, int):
        submitting.update(status=Refill.Status.PENDING, upstream_id=result, next_check_at=now)
    elif result.definite:
        submitting.update(status=Refill.Status.REJECTED, error=result.message, finished_at=now)
    else:
        # The upstream may have created it: a resend could refill twice.
        submitting.update(status=Refill.Status.NEEDS_ATTENTION,
                          error=f"outcome unknown: {result.message}")
