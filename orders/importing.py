"""Turning a provider's catalog into services we sell: one service per upstream service,
in a category of the same name, routed to it, priced by the default markup."""

from __future__ import annotations

from django.db import transaction

from orders.models import Category, Route, Service, ServiceType
from orders.pricing import record_service_updates
from providers.models import Provider, ProviderService


def import_services(provider: Provider) -> list[Service]:
    """Create a service for every offered upstream service that no route points at yet."""
    routed = Route.objects.filter(provider_service__provider=provider).values(
        "provider_service_id")
    upstream = list(ProviderService.objects.filter(provider=provider, offered=True)
                    .exclude(pk__in=routed).exclude(type__in=[""])
                    .filter(type__in=ServiceType.values).order_by("category", "upstream_id"))
    with transaction.atomic():
        categories = _categories({u.category or "Other" for u in upstream})
        services = Service.objects.bulk_create(
            Service(category=categories[u.category or "Other"], name=u.name, type=u.type,
                    description=u.description, min_quantity=u.min_quantity,
                    max_quantity=u.max_quantity, refill=u.refill, cancel=u.cancel,
                    dripfeed=u.dripfeed, position=i)
            for i, u in enumerate(upstream))
        Route.objects.bulk_create(Route(service=s, provider_service=u, priority=0)
                                  for s, u in zip(services, upstream, strict=True))
        record_service_updates(s.pk for s in services)  # "new service" for customers
    return services


def _categories(names: set[str]) -> dict[str, Category]:
    existing = {c.name: c for c in Category.objects.filter(name__in=names)}
    missing = sorted(names - set(existing))
    created = Category.objects.bulk_create(
        Category(name=name, position=Category.objects.count() + i)
        for i, name in enumerate(missing))
    return {**existing, **{c.name: c for c in created}}
