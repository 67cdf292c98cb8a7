"""What a service costs us and what it sells for: pure functions over loaded rows.

Price per 1000 = cost of the first usable route × the provider's conversion rate ×
(1 + markup), the markup from the service, else its category, else DEFAULT_MARKUP_PERCENT;
or the service's fixed rate. A customer's custom rate or discount applies on top. No price
goes below cost × (1 + MIN_MARGIN_PERCENT): a discount or a stale custom rate cannot sell
at a loss by accident. Rates round up (panel/money.py); charges half up.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings

from orders.models import Route, Service, ServiceQuerySet, ServiceUpdate
from orders.params import FLAT_TYPES
from panel.models import User
from panel.money import SMALLEST, quantize_money, quantize_rate
from providers.models import ServiceChange

HUNDRED = Decimal(100)


def primary_route(service: Service) -> Route | None:
    routes = service.usable_routes()
    return routes[0] if routes else None


def cost_rate(service: Service) -> Decimal | None:
    """Our cost per 1000 (per package for flat types) in the panel's currency."""
    route = primary_route(service)
    return route.cost_rate() if route else None


def markup_percent(service: Service) -> Decimal:
    for markup in (service.markup_percent, service.category.markup_percent):
        if markup is not None:
            return markup
    return Decimal(settings.DEFAULT_MARKUP_PERCENT)


def floor_rate(cost: Decimal) -> Decimal:
    return quantize_rate(cost * (1 + Decimal(settings.MIN_MARGIN_PERCENT) / HUNDRED))


def base_rate(service: Service) -> Decimal | None:
    """The list price per 1000, before any customer's discount; None if nothing can deliver it."""
    cost = cost_rate(service)
    if cost is None:
        return None
    if service.fixed_rate is not None:
        return max(service.fixed_rate, floor_rate(cost))
    return max(quantize_rate(cost * (1 + markup_percent(service) / HUNDRED)), floor_rate(cost))


def customer_rate(service: Service, user: User,
                  custom_rates: dict[int, Decimal] | None = None) -> Decimal | None:
    """This customer's price per 1000. `custom_rates` (service id → rate) saves a query per
    service when pricing a whole list."""
    cost = cost_rate(service)
    listed = base_rate(service)
    if cost is None or listed is None:
        return None
    if custom_rates is None:
        custom_rates = dict(user.custom_rates.filter(service=service)
                            .values_list("service_id", "rate")) if user.pk else {}
    rate = custom_rates.get(service.pk)
    if rate is None:
        rate = quantize_rate(listed * (1 - user.discount_percent / HUNDRED))
    return max(rate, floor_rate(cost))


def is_flat(service_type: str) -> bool:
    return service_type in FLAT_TYPES


def charge_for(rate: Decimal, units: int, service_type: str) -> Decimal:
    """What an order of `units` costs at `rate`; never zero, so every order has its charge."""
    amount = rate if is_flat(service_type) else rate * units / 1000
    return max(quantize_money(amount), SMALLEST)


def unguarded_rate(service: Service, cost: Decimal) -> Decimal:
    if service.fixed_rate is not None:
        return service.fixed_rate
    return quantize_rate(cost * (1 + markup_percent(service) / HUNDRED))


def guard_margins(provider_service_ids: list[int]) -> list[Service]:
    """After a sync changed these upstream services: reprice or disable (MARGIN_GUARD_ACTION)
    every enabled service whose own price would now sell below cost plus the minimum margin,
    and say why in the catalog change log. Returns the services it touched."""
    # The service's own flag, not its category's: a service in a category switched off for
    # a while must not come back on sale below the floor.
    services = (Service.objects.filter(enabled=True).with_routes()
                .filter(routes__provider_service_id__in=provider_service_ids).distinct())
    touched, notes = [], []
    for service in services:
        route = primary_route(service)
        if route is None:
            continue
        cost, price = route.cost_rate(), unguarded_rate(service, route.cost_rate())
        floor = floor_rate(cost)
        if price >= floor:
            continue
        note = _apply_guard(service, price, floor, cost)
        touched.append(service)
        notes.append(ServiceChange(provider_service=route.provider_service,
                                   field=ServiceChange.Field.RATE, old_value=str(price),
                                   new_value=str(floor), note=note))
    ServiceChange.objects.bulk_create(notes)
    return touched


def _apply_guard(service: Service, price: Decimal, floor: Decimal, cost: Decimal) -> str:
    why = (f"margin guard: service #{service.pk} '{service.name}' would sell at {price} per 1000, "
           f"below cost {cost} plus the minimum margin of {settings.MIN_MARGIN_PERCENT}%")
    if settings.MARGIN_GUARD_ACTION == "disable":
        Service.objects.filter(pk=service.pk).update(enabled=False)
        return f"{why}: disabled"
    if service.fixed_rate is not None:
        Service.objects.filter(pk=service.pk).update(fixed_rate=floor)
        return f"{why}: fixed rate raised to {floor}"
    Service.objects.filter(pk=service.pk).update(markup_percent=settings.MIN_MARGIN_PERCENT)
    return f"{why}: markup raised to {settings.MIN_MARGIN_PERCENT}%"


# --- the customers' change log (the Service updates page) -----------------------------------

def record_service_updates(service_ids: Iterable[int]) -> list[ServiceUpdate]:
    """Log, for each of these services, what changed for customers since its last entry:
    new, list price up or down, withdrawn or back. Prices follow costs and markups by
    themselves, so this compares the price now with the last one logged rather than trusting
    each caller to know what it changed. A constant number of queries for any number."""
    ids = sorted(set(service_ids))
    if not ids:
        return []
    latest = {u.service_id: u for u in ServiceUpdate.objects.filter(service_id__in=ids)
              .order_by("service_id", "-created_at", "-id").distinct("service_id")}
    entries = []
    for service in Service.objects.with_routes().filter(pk__in=ids):
        rate = base_rate(service) if service.for_sale else None
        previous = latest.get(service.pk)
        kind = _update_kind(previous.new_rate if previous else None, previous is not None, rate)
        if kind:
            entries.append(ServiceUpdate(service=service, kind=kind, new_rate=rate,
                                         old_rate=previous.new_rate if previous else None))
    return ServiceUpdate.objects.bulk_create(entries)


def _update_kind(last_rate: Decimal | None, logged: bool, rate: Decimal | None) -> str:
    Kind = ServiceUpdate.Kind
    if not logged:
        return Kind.NEW if rate is not None else ""
    if rate is None:
        return Kind.DISABLED if last_rate is not None else ""
    if last_rate is None:
        return Kind.ENABLED
    if rate == last_rate:
        return ""
    return Kind.PRICE_UP if rate > last_rate else Kind.PRICE_DOWN


def services_routed_to(provider_service_ids: Iterable[int]) -> list[int]:
    return list(Route.objects.filter(provider_service_id__in=list(provider_service_ids))
                .values_list("service_id", flat=True).distinct())


# --- the admin's view of prices (the services editor) ----------------------------------------

def margin_percent(price: Decimal | None, cost: Decimal | None) -> Decimal | None:
    """The markup a price makes over its cost, in percent (what MIN_MARGIN_PERCENT bounds)."""
    if price is None or not cost:
        return None
    return ((price - cost) * HUNDRED / cost).quantize(Decimal("0.1"))


def held_at_floor(service: Service) -> bool:
    """Whether the service's own price (its markup or fixed rate) is below cost plus the
    minimum margin, so that it sells at the floor instead."""
    cost = cost_rate(service)
    return cost is not None and unguarded_rate(service, cost) < floor_rate(cost)


def held_at_floor_ids(services: ServiceQuerySet) -> list[int]:
    """The ids of `services` held at the floor, as held_at_floor decides, from one pass over
    their usable routes (the first per service, by DISTINCT ON): a catalog of 10,000 takes
    a fraction of a second, where loading each service with its routes would not."""
    usable = Route.objects.filter(service__in=services.order_by().values("pk"),
                                  provider_service__offered=True,
                                  provider_service__provider__enabled=True,
                                  provider_service__provider__buying_paused_at__isnull=True)
    rows = (usable.order_by("service_id", "priority", "id").distinct("service_id")
            .values_list("service_id", "service__fixed_rate", "service__markup_percent",
                         "service__category__markup_percent", "provider_service__cost_rate",
                         "provider_service__provider__rate_to_panel"))
    default = Decimal(settings.DEFAULT_MARKUP_PERCENT)
    held = []
    for pk, fixed, markup, category_markup, upstream_cost, conversion in rows:
        cost = upstream_cost * conversion  # Provider.to_panel_currency
        if markup is None:
            markup = category_markup if category_markup is not None else default
        price = fixed if fixed is not None else quantize_rate(cost * (1 + markup / HUNDRED))
        if price < floor_rate(cost):
            held.append(pk)
    return held


def under_minimum(price: Decimal | None, cost: Decimal | None) -> bool:
    margin = margin_percent(price, cost)
    return margin is not None and margin < Decimal(settings.MIN_MARGIN_PERCENT)
