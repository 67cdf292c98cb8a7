"""Sending orders upstream: claim (commit SUBMITTING), call the provider, commit the outcome.

No network call happens inside a transaction. A definite failure tries the next route or
fails the order with a full refund; an unknown outcome parks the order for staff with the
money held, because API v2 has no idempotency key and a resend could buy twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils import timezone

from orders.models import Order, Route
from orders.params import FLAT_TYPES
from orders.polling import check_delay
from orders.pricing import charge_for
from providers.client import ProviderError

log = logging.getLogger(__name__)


def claim_due(limit: int = 50) -> list[int]:
    """Claim queued orders that are due, skipping rows another worker holds."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(Order.objects.due_for_dispatch(now).order_by("next_check_at")
                   .select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        Order.objects.filter(pk__in=ids).update(status=Order.Status.SUBMITTING, submitted_at=now)
    return ids


def claim_one(order_id: int) -> bool:
    now = timezone.now()
    return bool(Order.objects.due_for_dispatch(now).filter(pk=order_id).update(
        status=Order.Status.SUBMITTING, submitted_at=now))


def dispatch_due(limit: int = 50) -> int:
    ids = claim_due(limit)
    for order_id in ids:
        send_claimed(order_id)
    return len(ids)


def dispatch_one(order_id: int) -> bool:
    """The on-commit kick: send this order now if nobody else has claimed it."""
    if not claim_one(order_id):
        return False
    send_claimed(order_id)
    return True


def send_claimed(order_id: int) -> None:
    routes = Route.objects.select_related("provider_service__provider").order_by("priority", "id")
    order = (Order.objects.select_related("service", "forced_route__provider_service__provider")
             .prefetch_related(Prefetch("service__routes", queryset=routes)).get(pk=order_id))
    if order.status != Order.Status.SUBMITTING:
        return
    if order.runs and order.parent_id is None and not _upstream_dripfeed_routes(order):
        _split_into_runs(order)
        return
    while (route := _next_route(order)) is not None:
        try:
            upstream_id = route.provider.client().add(
                route.provider_service.upstream_id, **_upstream_params(order))
        except ProviderError as exc:
            if not exc.definite:
                _park(order, route, exc)
                return
            _record_failed_route(order, route, exc)
            continue
        _mark_sent(order, route, upstream_id)
        return
    _fail(order, order.error or "no provider could take this order")


def _candidate_routes(order: Order) -> list[Route]:
    if order.forced_route_id:
        assert order.forced_route is not None
        return [order.forced_route]
    return order.service.usable_routes()


def _next_route(order: Order) -> Route | None:
    for route in _candidate_routes(order):
        if route.pk in order.tried_routes:
            continue
        reason = _unfit(order, route)
        if reason:
            _record_failed_route(order, route, None, reason)
            continue
        return route
    return None


def _unfit(order: Order, route: Route) -> str:
    """Why a route cannot take this order without asking it (and without selling at a loss)."""
    upstream = route.provider_service
    if not route.is_usable():
        return f"{route.provider} no longer offers service {upstream.upstream_id}"
    flat = order.service.type in FLAT_TYPES  # a package's quantity is not ours to bound
    if not flat and not upstream.min_quantity <= order.quantity <= upstream.max_quantity:
        bounds = f"{upstream.min_quantity}-{upstream.max_quantity}"
        return f"quantity outside {route.provider}'s {bounds}"
    if order.runs and order.parent_id is None and not upstream.dripfeed:
        return f"{route.provider} does not drip-feed service {upstream.upstream_id}"
    cost = charge_for(route.cost_rate(), order.charged_units, order.service.type)
    if order.charge > 0 and cost > order.charge:
        return f"{route.provider} would cost {cost}, more than the {order.charge} paid"
    return ""


def _upstream_dripfeed_routes(order: Order) -> list[Route]:
    return [r for r in _candidate_routes(order) if r.provider_service.dripfeed]


def _upstream_params(order: Order) -> dict[str, str]:
    params = {k: str(v) for k, v in order.params.items()}  # quantity included where taken
    if order.link:
        params["link"] = order.link
    if order.runs and order.parent_id is None:
        params.update(runs=str(order.runs), interval=str(order.interval))
    return params


def _record_failed_route(order: Order, route: Route, exc: ProviderError | None,
                         reason: str = "") -> None:
    message = f"{route.provider}: {exc.message if exc else reason}"
    order.tried_routes = [*order.tried_routes, route.pk]
    order.error = message
    Order.objects.filter(pk=order.pk).update(tried_routes=order.tried_routes, error=message)
    order.log("route_failed", message)
    log.info("order %s: route %s refused: %s", order.pk, route.pk, message)


def _mark_sent(order: Order, route: Route, upstream_id: int) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            sent = order.compare_and_set(
                Order.Status.SUBMITTING, status=Order.Status.PENDING, upstream_id=upstream_id,
                route=route, provider=route.provider, next_check_at=now + first_check_delay(),
                last_progress_at=now, error="")
    except IntegrityError:
        # The upstream gave an id we already hold for another order: a person must look.
        _park_message(order, f"{route.provider} answered with order id {upstream_id}, which "
                             "another order already has")
        return
    if sent:
        order.log("sent", f"{route.provider} order {upstream_id}")
    else:
        # Someone moved the order on while the request was out (staff, the watchdog): the
        # purchase happened all the same, so it must reach a person, not vanish.
        order.flag(f"bought as {route.provider} order {upstream_id} after the order left "
                   "SUBMITTING: check it is not paid for twice")
        log.warning("order %s: late upstream id %s from %s", order.pk, upstream_id,
                    route.provider)


def first_check_delay() -> timedelta:
    return check_delay(timedelta(0))


def _park(order: Order, route: Route, exc: ProviderError) -> None:
    _park_message(order, f"{route.provider}: outcome unknown ({exc.message}); it may have been "
                         "bought upstream, so it is not resent automatically")


def _park_message(order: Order, message: str) -> None:
    now = timezone.now()
    if order.compare_and_set(Order.Status.SUBMITTING, status=Order.Status.NEEDS_ATTENTION,
                             error=message, flagged_at=now, flag_reason=message):
        order.log("needs_attention", message)
        log.warning("order %s needs attention: %s", order.pk, message)


def _fail(order: Order, reason: str) -> None:
    if order.fail((Order.Status.SUBMITTING,), None, reason):
        log.info("order %s failed and refunded: %s", order.pk, reason)


def _split_into_runs(order: Order) -> None:
    """No route drip-feeds upstream: the panel runs it, one upstream order per run."""
    now = timezone.now()
    assert order.runs and order.interval
    with transaction.atomic():
        if not order.compare_and_set(Order.Status.SUBMITTING, status=Order.Status.IN_PROGRESS,
                                     last_progress_at=now):
            return
        runs = Order.objects.bulk_create(
            Order(user_id=order.user_id, service_id=order.service_id, parent=order,
                  run_number=number, link=order.link, quantity=order.quantity,
                  charged_units=order.quantity, params=order.params, rate=order.rate,
                  charge=0, cost=0, next_check_at=now + timedelta(minutes=order.interval * i))
            for i, number in enumerate(range(1, order.runs + 1))
        )
        order.log("drip_feed", f"{order.runs} runs every {order.interval} minutes, "
                               "run by the panel")
    dispatch_one(runs[0].pk)  # the first run is due now
