"""Sending orders upstream: claim (commit SUBMITTING), call the provider, commit the outcome.

No network call happens inside a transaction. A definite failure tries the next route or
fails the order with a full refund; an unknown outcome parks the order for staff with the
money held, because API v2 has no idempotency key and a resend could buy twice. A temporary
refusal (rate limited, our balance there too low) puts the send off with a backoff.

Every claim carries a token, and a send goes out only after a compare-and-set of that token
right before the call: a worker whose claim went stale (the watchdog parked the order, staff
resent it, another worker claimed it) can never send it again. While the request is out the
row holds a second, in-flight token, so an order whose claim failed before anything was sent
goes back to the queue, and one that may have been bought never does.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils import timezone

from orders.models import Order, OrderEvent, ParkPhase, Route, new_claim_token
from orders.params import FLAT_TYPES
from orders.polling import check_delay
from orders.pricing import charge_for
from panel.money import quantize_refund
from providers.client import ErrorKind, ProviderError, log_context
from providers.sync import report_out_of_funds

log = logging.getLogger(__name__)


class NotSent(Exception):
    """Sending failed before any request could leave: the order may go back to the queue."""


def claim_due(limit: int = 50) -> tuple[uuid.UUID, list[int]]:
    """Claim queued orders that are due, skipping rows another worker holds."""
    now, token = timezone.now(), new_claim_token()
    # sent_to is cleared by every claim and set right before a request leaves: a claim the
    # watchdog finds without it never sent anything, and may go back to the queue.
    rows = Order.objects.due_for_dispatch(now).claim(
        limit, status=Order.Status.SUBMITTING, submitted_at=now, claim_token=token,
        sent_to=None)
    return token, [row[0] for row in rows]


def claim_one(order_id: int) -> uuid.UUID | None:
    now, token = timezone.now(), new_claim_token()
    claimed = Order.objects.due_for_dispatch(now).filter(pk=order_id).update(
        status=Order.Status.SUBMITTING, submitted_at=now, claim_token=token, sent_to=None)
    return token if claimed else None


def dispatch_due(limit: int = 50) -> int:
    """Send a batch of due orders, one at a time, for at most DISPATCH_BATCH_SECONDS: what is
    left when the time is up goes back to the queue unsent, so no claim grows old enough for
    the watchdog to take it for a send that hung."""
    token, ids = claim_due(limit)
    deadline = time.monotonic() + settings.DISPATCH_BATCH_SECONDS
    for position, order_id in enumerate(ids):
        if time.monotonic() > deadline:
            for left in ids[position:]:
                return_unsent(left, token, "the batch's time ran out before it was sent")
            break
        send_isolated(order_id, token)
    return len(ids)


def dispatch_one(order_id: int) -> bool:
    """The on-commit kick: send this order now if nobody else has claimed it."""
    token = claim_one(order_id)
    if token is None:
        return False
    send_isolated(order_id, token)
    return True


def send_isolated(order_id: int, token: uuid.UUID) -> None:
    """send_claimed, so that one order's failure cannot abandon the rest of a batch."""
    try:
        send_claimed(order_id, token)
    except Exception as exc:
        # Never sent (the claim still holds the claim token): back to the queue. If the
        # request may have left, the row holds the in-flight token and stays SUBMITTING
        # until the watchdog hands it to staff.
        log.exception("order %s: sending failed", order_id)
        return_unsent(order_id, token, f"not sent: {type(exc).__name__}: {exc}")


def return_unsent(order_id: int, token: uuid.UUID, reason: str) -> bool:
    """Put a claimed order that was never sent back in the queue, with the reason."""
    with transaction.atomic():
        back = Order.objects.filter(pk=order_id, status=Order.Status.SUBMITTING,
                                    claim_token=token).update(
            status=Order.Status.QUEUED, claim_token=None, error=reason,
            next_check_at=timezone.now() + timedelta(seconds=settings.DISPATCH_RETRY_SECONDS))
        if back:
            OrderEvent.objects.create(order_id=order_id, kind="requeued", message=reason)
    return bool(back)


def _load(order_id: int) -> Order:
    routes = Route.objects.select_related("provider_service__provider").order_by("priority", "id")
    return (Order.objects.select_related("service", "forced_route__provider_service__provider")
            .prefetch_related(Prefetch("service__routes", queryset=routes)).get(pk=order_id))


def send_claimed(order_id: int, token: uuid.UUID) -> None:
    order = _load(order_id)
    if order.status != Order.Status.SUBMITTING or order.claim_token != token:
        return  # someone else holds it now
    if order.runs and order.parent_id is None and not _upstream_dripfeed_routes(order):
        _split_into_runs(order, token)
        return
    put_off: dict[int, str] = {}  # routes that said "not now", skipped for this send only
    dripfeed_refused = False
    while (route := _next_route(order, put_off)) is not None:
        result = _buy(order, route, token)
        if result is None:
            return  # the claim went stale right before the call: nothing was sent
        if isinstance(result, int):
            _mark_sent(order, route, result)
            return
        if not result.definite:
            _park(order, route, result)
            return
        if result.key_refused and _key_refused(route, result):
            put_off[route.pk] = _paused(route)
            order.log("route_busy", put_off[route.pk])
        elif result.temporary:
            put_off[route.pk] = _put_off_route(order, route, result)
        else:
            dripfeed_refused |= _refused_dripfeed(order, route, result)
            _record_failed_route(order, route, result)
        if not _end_flight(order, token):
            return
    if put_off:
        _defer(order, token, "; ".join(put_off.values()))
    elif dripfeed_refused:
        _split_into_runs(order, token)  # nothing was bought: the panel runs the drip-feed
    else:
        _fail(order, order.error or "no provider could take this order")


def _refused_dripfeed(order: Order, route: Route, exc: ProviderError) -> bool:
    """An upstream whose catalog says it drip-feeds may still refuse runs/interval with a
    definite error in its own words ("Request Invalid" for an interval it does not allow).
    Errors that name another cause (link, key, service, quantity) are not about drip-feed.
    The route is remembered as one the panel drip-feeds itself, and this order is run here."""
    # "Request Invalid" classes as UNSUPPORTED (an action the upstream lacks); on an `add`
    # with runs it refuses the drip-feed parameters. Other definite words are OTHER.
    about_dripfeed = exc.definite and exc.kind in (ErrorKind.OTHER, ErrorKind.UNSUPPORTED)
    if not (order.runs and order.parent_id is None) or not about_dripfeed:
        return False
    reason = f"refused runs={order.runs} interval={order.interval}: {exc.message}"
    if route.refuse_dripfeed(reason):
        log.warning("route %s: %s; drip-feeds through it are run by the panel", route.pk,
                    reason)
    order.log("dripfeed_refused", f"{route.provider} {reason}; the panel runs the drip-feed")
    return True


def _buy(order: Order, route: Route, token: uuid.UUID) -> int | ProviderError | None:
    """One `add` upstream, only while this claim is still the order's current one."""
    try:
        client = route.provider.client()  # a provider key that no longer decrypts fails here
        params = _upstream_params(order)
    except Exception as exc:
        raise NotSent(f"{route.provider}: {exc}") from exc
    flight = uuid.uuid4()
    if not Order.objects.filter(pk=order.pk, status=Order.Status.SUBMITTING,
                                claim_token=token).update(claim_token=flight,
                                                          submitted_at=timezone.now(),
                                                          sent_to=route.provider):
        log.warning("order %s: claim is no longer current; not sending", order.pk)
        return None
    order.claim_token = flight
    # The client's log line for this `add` names the order and the request that placed it.
    context = log_context.set((("order", order.pk), ("request_id", order.request_id or "-")))
    try:
        return client.add(route.provider_service.upstream_id, **params)
    except ProviderError as exc:
        return exc
    finally:
        log_context.reset(context)
        client.close()


def _end_flight(order: Order, token: uuid.UUID) -> bool:
    """A definite failure: nothing is in flight any more, the claim is ours again."""
    assert order.claim_token is not None
    ended = Order.objects.filter(pk=order.pk, status=Order.Status.SUBMITTING,
                                 claim_token=order.claim_token).update(claim_token=token)
    order.claim_token = token
    return bool(ended)


def _candidate_routes(order: Order) -> list[Route]:
    if order.forced_route_id:
        assert order.forced_route is not None
        return [order.forced_route]
    # Routes through a provider whose buying is paused stay candidates: the pause is for an
    # admin to lift, and the order should wait for it rather than fail.
    return [r for r in order.service.routes.all()
            if r.provider_service.offered and r.provider.enabled]


def _next_route(order: Order, skip: dict[int, str]) -> Route | None:
    for route in _candidate_routes(order):
        if route.pk in order.tried_routes or route.pk in skip:
            continue
        if route.provider.buying_paused_at is not None:
            skip[route.pk] = _paused(route)
            continue
        reason = _unfit(order, route)
        if reason:
            _record_failed_route(order, route, None, reason)
            continue
        return route
    return None


def _paused(route: Route) -> str:
    return f"{route.provider}: buying paused ({route.provider.currency_mismatch})"


def _unfit(order: Order, route: Route) -> str:
    """Why a route cannot take this order without asking it (and without selling at a loss)."""
    upstream = route.provider_service
    if upstream.cost_unconfirmed:
        return (f"{route.provider}'s cost for service {upstream.upstream_id} is "
                f"{upstream.cost_rate} per 1000, too small to be right until an admin confirms it")
    if not route.is_usable():
        return f"{route.provider} no longer offers service {upstream.upstream_id}"
    flat = order.service.type in FLAT_TYPES  # a package's quantity is not ours to bound
    if not flat and not upstream.min_quantity <= order.quantity <= upstream.max_quantity:
        bounds = f"{upstream.min_quantity}-{upstream.max_quantity}"
        return f"quantity outside {route.provider}'s {bounds}"
    if order.runs and order.parent_id is None and not route.upstream_dripfeeds:
        return f"{route.provider} does not drip-feed service {upstream.upstream_id}"
    cost = charge_for(route.cost_rate(), order.charged_units, order.service.type)
    if cost > order.charge:  # a drip-feed run's charge is its share of the parent's
        return f"{route.provider} would cost {cost}, more than the {order.charge} paid"
    return ""


def _upstream_dripfeed_routes(order: Order) -> list[Route]:
    return [r for r in _candidate_routes(order) if r.upstream_dripfeeds]


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


def _key_refused(route: Route, exc: ProviderError) -> bool:
    """An `add` refused in words of a key refusal: buying from the provider is paused and
    the order waits for an admin, rather than failing here and at every order after it.
    Such words can also be about the order ("User not found" for a username parameter), so
    a `balance` call, which names nothing but the key, decides; when it cannot answer
    either, the refusal is taken at its word."""
    try:
        with route.provider.client() as client:
            client.balance()
    except ProviderError as check:
        log.warning("%s: balance check after a key refusal: %s", route.provider, check)
    else:
        return False  # the key works: the refusal was about this order
    route.provider.refused_key(exc, "an order was refused")
    return True


def _put_off_route(order: Order, route: Route, exc: ProviderError) -> str:
    """A route that said "not now": skip it for this send only, and say why."""
    message = f"{route.provider}: {exc.message} (temporary)"
    order.log("route_busy", message)
    if exc.kind == ErrorKind.NOT_ENOUGH_FUNDS:
        report_out_of_funds(route.provider, exc.message)
    return message


def _defer(order: Order, token: uuid.UUID, reason: str) -> None:
    """Every route left said "try again later": back to the queue with a growing backoff.
    Nothing was bought (each refusal was definite), so a later send cannot buy twice."""
    delay = min(settings.DISPATCH_RETRY_SECONDS * 2 ** min(order.deferrals, 16),
                settings.DISPATCH_MAX_BACKOFF_SECONDS)
    with transaction.atomic():
        if Order.objects.filter(pk=order.pk, status=Order.Status.SUBMITTING,
                                claim_token=token).update(
                status=Order.Status.QUEUED, claim_token=None, error=reason,
                deferrals=order.deferrals + 1,
                next_check_at=timezone.now() + timedelta(seconds=delay)):
            order.log("deferred", f"{reason}; tried again in {int(delay)} s")


def _mark_sent(order: Order, route: Route, upstream_id: int) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            sent = order.compare_and_set(
                Order.Status.SUBMITTING, status=Order.Status.PENDING, upstream_id=upstream_id,
                route=route, provider=route.provider, next_check_at=now + first_check_delay(),
                last_progress_at=now, error="", claim_token=None)
            if sent:
                order.log("sent", f"{route.provider} order {upstream_id}")
                if order.parent_id:
                    order.record_parent_progress()
    except IntegrityError:
        # The upstream gave an id we already hold for another order: a person must look.
        _park_message(order, f"{route.provider} answered with order id {upstream_id}, which "
                             "another order already has", park_phase=ParkPhase.DUPLICATE_ID,
                      park_reply=f'{{"order": {upstream_id}}}')
        return
    if not sent:
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
                         "bought upstream, so it is not resent automatically",
                  park_phase=ParkPhase(exc.phase or ParkPhase.READ),
                  park_http_status=exc.http_status, park_reply=exc.reply_start)


def _park_message(order: Order, message: str, **what_happened: Any) -> None:
    """Park the order for staff, with what happened (ParkPhase and the reply) on the row."""
    now = timezone.now()
    what_happened.setdefault("park_phase", ParkPhase.REPLY)
    with transaction.atomic():
        if order.compare_and_set(Order.Status.SUBMITTING, status=Order.Status.NEEDS_ATTENTION,
                                 error=message, flagged_at=now, flag_reason=message,
                                 claim_token=None, parked_at=now, **what_happened):
            order.log("needs_attention", message)
            log.warning("order %s needs attention (request_id=%s): %s", order.pk,
                        order.request_id or "-", message)
            if order.parent_id:
                order.flag_parent(f"run {order.run_number} needs attention: {message}")


def _fail(order: Order, reason: str) -> None:
    if order.fail((Order.Status.SUBMITTING,), None, reason):
        log.info("order %s failed and refunded: %s", order.pk, reason)


def run_shares(total: Decimal, runs: int) -> list[Decimal]:
    """`total` split over `runs` in money units: equal shares, the last one taking the
    rounding, so the shares add up to the total exactly."""
    share = quantize_refund(total / runs)  # rounded down: the last share is never negative
    return [share] * (runs - 1) + [total - share * (runs - 1)]


def _split_into_runs(order: Order, token: uuid.UUID) -> None:
    """No route drip-feeds upstream: the panel runs it, one upstream order per run, each
    carrying its share of the charge so the cost guard and reports see real money. Run n+1
    goes out once run n has ended and the interval has passed (Order.settle_runs)."""
    now = timezone.now()
    assert order.runs and order.interval
    charges, costs = run_shares(order.charge, order.runs), run_shares(order.cost, order.runs)
    with transaction.atomic():
        if not Order.objects.filter(pk=order.pk, status=Order.Status.SUBMITTING,
                                    claim_token=token).update(
                status=Order.Status.IN_PROGRESS, last_progress_at=now, claim_token=None,
                error=""):
            return
        runs = Order.objects.bulk_create(
            Order(user_id=order.user_id, service_id=order.service_id, parent=order,
                  run_number=number, link=order.link, quantity=order.quantity,
                  charged_units=order.quantity, params=order.params, rate=order.rate,
                  charge=charge, cost=cost, next_check_at=now if number == 1 else None,
                  request_id=order.request_id)
            for number, charge, cost in zip(range(1, order.runs + 1), charges, costs,
                                            strict=True)
        )
        order.log("drip_feed", f"{order.runs} runs every {order.interval} minutes, "
                               "run by the panel")
    dispatch_one(runs[0].pk)  # the first run is due now
