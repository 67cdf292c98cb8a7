"""Placing an order: the one function behind the web form, mass orders and API v2 `add`."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from orders import pricing
from orders.errors import ACTIVE_LINK, BAD_REQUEST, INCORRECT_SERVICE, NOT_ENOUGH_FUNDS, Refusal
from orders.models import CustomRate, Order, Route, Service, kick_dispatch
from orders.params import OrderRequest, parse_id, parse_order
from panel import ledger
from panel.models import User
from panel.money import quantize_money

# The id of the request being served (orders/api.py sets it per API call); orders placed
# while it is set carry it.
request_id: ContextVar[str] = ContextVar("request_id", default="")
_GIVEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id(given: str = "") -> str:
    """The client's X-Request-ID when it is a plain token (so its logs and ours match), else
    a new random one."""
    return given if _GIVEN_ID.fullmatch(given) else uuid.uuid4().hex


@dataclass(frozen=True)
class Quote:
    """What an order would be and cost, right now, for this customer: what place_order
    charges, to the last digit, because place_order charges exactly this."""

    service: Service
    request: OrderRequest
    route: Route
    rate: Decimal  # this customer's price per 1000 (per package for flat types)
    charge: Decimal
    cost: Decimal


def quote(user: User, service_id: object, params: Mapping[str, object]) -> Quote:
    """Validate by type and price for `user`; writes nothing. Raises Refusal."""
    service, custom_rates = _service(service_id, user)
    request = parse_order(service.type, params, min_quantity=service.min_quantity,
                          max_quantity=service.max_quantity, dripfeed=service.dripfeed,
                          today=timezone.localdate(),
                          default_posts=settings.SUBSCRIPTION_DEFAULT_POSTS)
    route = pricing.primary_route(service)
    rate = pricing.customer_rate(service, user, custom_rates)
    if route is None or rate is None:
        raise Refusal(INCORRECT_SERVICE, "service")  # nothing can deliver it right now
    charge = pricing.charge_for(rate, request.charged_units, service.type)
    cost = quantize_money(pricing.charge_for(route.cost_rate(), request.charged_units,
                                             service.type))
    return Quote(service, request, route, rate, charge, cost)


def place_order(user: User, service_id: object, params: Mapping[str, object]) -> Order:
    """Quote, and in one transaction debit the ledger and create the order (QUEUED) with its
    price and cost snapshots. Dispatch is kicked once that commits.
    Raises Refusal; on error nothing is written."""
    offer = quote(user, service_id, params)
    service, request = offer.service, offer.request
    with transaction.atomic():
        if service.one_order_per_link and request.link:
            _refuse_active_link(service, request.link)
        order = Order.objects.create(
            user=user, service=service, link=request.link, quantity=request.quantity,
            runs=request.runs, interval=request.interval, charged_units=request.charged_units,
            params=_stored_params(request), rate=offer.rate, charge=offer.charge,
            cost=offer.cost, next_check_at=timezone.now(),
            request_id=request_id.get() or new_request_id(),
        )
        try:
            ledger.charge(user.pk, offer.charge, order_id=order.pk, memo=f"order #{order.pk}")
        except ledger.InsufficientFunds:
            raise Refusal(NOT_ENOUGH_FUNDS) from None
        transaction.on_commit(lambda: kick_dispatch(order.pk), robust=True)
    return order


def _stored_params(request: OrderRequest) -> dict[str, str]:
    # What goes upstream besides link and drip-feed (added at dispatch, since a run the panel
    # drip-feeds itself is sent without them).
    return {k: v for k, v in request.upstream_params().items()
            if k not in ("link", "runs", "interval")}


def _service(service_id: object, user: User) -> tuple[Service, dict[int, Decimal]]:
    """The service with its routes, and this customer's custom rate for it."""
    pk = parse_id(service_id)
    service = None if pk is None else _catalog_entry(pk)
    if service is None:
        raise Refusal(INCORRECT_SERVICE, "service")  # unknown, disabled, or routed nowhere
    rate = _custom_rate(user.pk, service.pk)
    return service, {} if rate is None else {service.pk: rate}


# Every order, API `add` included, needs its service and routes: one joined query, kept per
# process for CATALOG_CACHE_SECONDS. A price up to that old is safe to sell at, because
# dispatch never buys through a route that now costs more than the customer paid. The
# customer's custom rate for the service is kept as long, for the same reason (and the
# margin floor still applies to it), so an API `add` spends no round trip on pricing.
_catalog: dict[int, tuple[float, Service | None]] = {}
_custom_rates: dict[tuple[int, int], tuple[float, Decimal | None]] = {}


def _custom_rate(user_id: int, service_id: int) -> Decimal | None:
    now = time.monotonic()
    cached = _custom_rates.get((user_id, service_id))
    if cached is not None and cached[0] > now:
        return cached[1]
    rate = (CustomRate.objects.filter(user_id=user_id, service_id=service_id)
            .values_list("rate", flat=True).first())
    if settings.CATALOG_CACHE_SECONDS > 0:
        if len(_custom_rates) > 10_000:
            _custom_rates.clear()
        _custom_rates[(user_id, service_id)] = (now + settings.CATALOG_CACHE_SECONDS, rate)
    return rate


def _catalog_entry(service_id: int) -> Service | None:
    now = time.monotonic()
    cached = _catalog.get(service_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    routes = list(Route.objects.filter(service_id=service_id, service__enabled=True,
                                       service__category__enabled=True)
                  .select_related("service__category", "provider_service__provider")
                  .order_by("priority", "id"))
    service = routes[0].service if routes else None
    if service is not None:
        service.use_routes(routes)
    if settings.CATALOG_CACHE_SECONDS > 0:
        if len(_catalog) > 10_000:  # ids that do not exist must not grow it without bound
            _catalog.clear()
        _catalog[service_id] = (now + settings.CATALOG_CACHE_SECONDS, service)
    return service


def _refuse_active_link(service: Service, link: str) -> None:
    # Two concurrent orders for one link must not both pass the check: a transaction-scoped
    # advisory lock on (service, link) makes the check-then-insert atomic.
    digest = hashlib.blake2b(f"{service.pk}|{link}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)",
                       [int.from_bytes(digest, "big", signed=True)])
    if Order.objects.live().filter(service=service, link=link, parent__isnull=True).exists():
        raise Refusal(ACTIVE_LINK, "link")


@dataclass
class MassOrderLine:
    number: int
    text: str
    order: Order | None = None
    error: str = ""


def place_mass_order(user: User, text: str, max_lines: int = 1000) -> list[MassOrderLine]:
    """Lines of `service_id | link | quantity`; each succeeds or fails on its own."""
    results = []
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    for number, line in enumerate(lines[:max_lines], start=1):
        result = MassOrderLine(number, line.strip())
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3:
            result.error = f"{BAD_REQUEST}: use service_id | link | quantity"
        else:
            try:
                result.order = place_order(user, parts[0],
                                           {"link": parts[1], "quantity": parts[2]})
            except Refusal as exc:
                result.error = exc.message
        results.append(result)
    if len(lines) > max_lines:
        results.append(MassOrderLine(max_lines + 1, "…",
                                     error=f"only the first {max_lines} lines are placed"))
    return results
