"""Refills: a customer asks, the server checks eligibility, a sweep sends them upstream in
batches and polling follows them (orders/polling.py)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.errors import INCORRECT_ORDER, Refusal
from orders.errors import NOT_ELIGIBLE_REFILL as NOT_ELIGIBLE
from orders.models import Order, Refill
from panel.models import User
from providers.client import ErrorKind, ProviderError
from providers.models import Provider

log = logging.getLogger(__name__)
BATCH = 100
RETRY_AFTER = timedelta(minutes=2)


# Why an order cannot be refilled now. The API answers every one of them with the same
# NOT_ELIGIBLE text (clients match on it); the order page says which one in words.
REFILL_NOT_OFFERED = "not_offered"
REFILL_NOT_COMPLETED = "not_completed"
REFILL_NO_UPSTREAM_ORDER = "no_upstream_order"
REFILL_WINDOW_OVER = "window_over"
REFILL_PENDING = "pending"
REFILL_RUN = "run"


def refill_obstacle(order: Order, active_refill: bool | None = None) -> str:
    """What stops a refill of this order now ("" when nothing does). `active_refill` saves
    the query when the caller already knows whether one is pending."""
    if order.parent_id is not None:
        return REFILL_RUN  # a drip-feed run is the panel's business, not a customer's order
    if not order.service.refill:
        return REFILL_NOT_OFFERED
    if order.status != Order.Status.COMPLETED:
        return REFILL_NOT_COMPLETED
    if order.provider_id is None or order.upstream_id is None:
        return REFILL_NO_UPSTREAM_ORDER  # a drip-feed the panel ran has no single upstream order
    deadline = order.service.refill_deadline(order.finished_at)
    if deadline is not None and timezone.now() > deadline:
        return REFILL_WINDOW_OVER
    if active_refill is None:
        active_refill = order.refills.filter(status__in=Refill.ACTIVE).exists()
    if active_refill:
        return REFILL_PENDING
    return ""


def refill_refusal(order: Order, active_refill: bool | None = None) -> str:
    """The API's answer: why this order cannot be refilled now, or "" when it can."""
    return NOT_ELIGIBLE if refill_obstacle(order, active_refill) else ""


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
        raise Refusal(NOT_ELIGIBLE) from None  # one became pending since the check above
    return refill


def _kick() -> None:
    from orders.tasks import send_refills

    send_refills.delay()


def claim_queued(limit: int = 500) -> list[Refill]:
    now = timezone.now()
    with transaction.atomic():
        ids = list(Refill.objects.filter(status=Refill.Status.QUEUED, next_check_at__lte=now)
                   .select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        Refill.objects.filter(pk__in=ids).update(status=Refill.Status.SUBMITTING,
                                                 submitted_at=now)
    return list(Refill.objects.filter(pk__in=ids).select_related("order"))


def send_refills() -> int:
    by_provider: dict[int, list[Refill]] = defaultdict(list)
    for refill in claim_queued():
        by_provider[refill.provider_id].append(refill)
    for provider_id, refills in by_provider.items():
        provider = Provider.objects.get(pk=provider_id)
        for start in range(0, len(refills), BATCH):
            _send_batch(provider, refills[start:start + BATCH])
    return sum(len(r) for r in by_provider.values())


def _send_batch(provider: Provider, refills: list[Refill]) -> None:
    by_upstream = {r.order.upstream_id or 0: r for r in refills}
    try:
        results = provider.client().refills(list(by_upstream))
    except ProviderError as exc:
        if exc.definite:  # nothing reached the upstream: try the whole batch again later
            Refill.objects.filter(pk__in=[r.pk for r in refills]).update(
                status=Refill.Status.QUEUED, next_check_at=timezone.now() + RETRY_AFTER)
            return
        for refill in refills:
            _record(refill, exc)
        return
    missing = ProviderError(ErrorKind.BAD_REPLY, "no answer for this refill", definite=False)
    for upstream_order_id, refill in by_upstream.items():
        _record(refill, results.get(upstream_order_id, missing))


def _record(refill: Refill, result: int | ProviderError) -> None:
    now = timezone.now()
    submitting = Refill.objects.filter(pk=refill.pk, status=Refill.Status.SUBMITTING)
    if isinstance(result, int):
        submitting.update(status=Refill.Status.PENDING, upstream_id=result, next_check_at=now)
    elif result.definite:
        submitting.update(status=Refill.Status.REJECTED, error=result.message, finished_at=now)
    else:
        # The upstream may have created it: a resend could refill twice.
        submitting.update(status=Refill.Status.NEEDS_ATTENTION,
                          error=f"outcome unknown: {result.message}")
