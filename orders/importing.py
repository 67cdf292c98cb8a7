"""Turning a provider's catalog into services we sell, and keeping them in line with it.

An import takes a selection of upstream services and a plan (which category, what price,
what later syncs may copy) and creates one service per upstream service, routed to it. The
same plan previews the prices and margins before anything is written. Both run in a
constant number of queries, whatever the selection's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Max, Q, QuerySet

from orders.models import Category, Route, Service, ServiceType
from orders.pricing import (
    HUNDRED,
    floor_rate,
    record_service_updates,
    unguarded_rate,
)
from providers.models import Provider, ProviderService

OTHER = "Other"  # the category of upstream services that name none


@dataclass
class ImportPlan:
    """How a selection becomes services. One of `category` (an existing one), `new_category`
    (a name to create) or `map_categories` (one of ours per upstream category: the one
    `category_map` names, else the one of the same name; created where missing). A fixed
    rate wins over a markup; neither: the category's markup or the default. `follow_price`
    off pins today's price as a fixed rate."""

    category: Category | None = None
    new_category: str = ""
    map_categories: bool = False
    markup_percent: Decimal | None = None
    fixed_rate: Decimal | None = None
    follow_price: bool = True
    sync_name: bool = False
    sync_description: bool = False
    sync_bounds: bool = False
    category_map: dict[str, str] = field(default_factory=dict)  # upstream → our category
    names: dict[int, str] = field(default_factory=dict)  # ProviderService pk → our name
    descriptions: dict[int, str] = field(default_factory=dict)

    def category_name(self, upstream: ProviderService) -> str:
        if self.category is not None:
            return self.category.name
        if self.map_categories:
            name = upstream.category or OTHER
            return (self.category_map.get(name) or name)[:200]
        return self.new_category.strip()[:200]


@dataclass
class PreviewRow:
    upstream: ProviderService
    service: Service  # unsaved
    cost: Decimal | None  # per 1000 in the panel's currency
    price: Decimal | None

    @property
    def margin(self) -> Decimal | None:
        if self.cost is None or self.price is None:
            return None
        return self.price - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        if self.margin is None or not self.cost:
            return None
        return (self.margin / self.cost * HUNDRED).quantize(Decimal("0.1"))

    @property
    def at_floor(self) -> bool:
        """The plan's price was under cost plus the minimum margin: it sells at the floor."""
        if self.cost is None or self.price is None:
            return False
        return unguarded_rate(self.service, self.cost) < self.price


def importable(provider: Provider) -> QuerySet[ProviderService]:
    """The offered upstream services of a type we can sell, with their provider loaded."""
    return (ProviderService.objects.filter(provider=provider, offered=True,
                                           type__in=ServiceType.values)
            .select_related("provider").order_by("category", "upstream_id"))


def preview(upstream: Iterable[ProviderService], plan: ImportPlan) -> list[PreviewRow]:
    """What an import of `upstream` by `plan` would create, priced, without writing."""
    rows = list(upstream)
    categories = _categories({plan.category_name(u) for u in rows}, create=False)
    return [_preview_row(u, _draft(u, plan, categories[plan.category_name(u)], i))
            for i, u in enumerate(rows)]


def import_selected(upstream: Iterable[ProviderService], plan: ImportPlan) -> list[Service]:
    """Create a service per upstream service (their `provider` loaded), routed to it, in one
    transaction. Upstream services already routed to are imported again only if selected:
    the caller decides; the page says where each is already sold."""
    rows = list(upstream)
    if not rows:
        return []
    with transaction.atomic():
        categories = _categories({plan.category_name(u) for u in rows}, create=True)
        start = _next_positions(categories.values())
        drafts = []
        for u in rows:
            category = categories[plan.category_name(u)]
            drafts.append(_draft(u, plan, category, start[category.pk]))
            start[category.pk] += 1
        if not plan.follow_price:
            for upstream_row, service in zip(rows, drafts, strict=True):
                if service.fixed_rate is None:
                    service.fixed_rate = _priced(upstream_row, service)[1]
        services = Service.objects.bulk_create(drafts)
        Route.objects.bulk_create(Route(service=s, provider_service=u, priority=0)
                                  for s, u in zip(services, rows, strict=True))
        record_service_updates(s.pk for s in services)  # "new service" for customers
    return services


def import_services(provider: Provider) -> list[Service]:
    """Every offered upstream service that no route points at yet, in categories named as
    upstream, at the default markup (the demo and `manage.py import_services`)."""
    routed = Route.objects.filter(provider_service__provider=provider).values(
        "provider_service_id")
    upstream = [u for u in importable(provider).exclude(pk__in=routed)]
    return import_selected(upstream, ImportPlan(map_categories=True))


def _draft(upstream: ProviderService, plan: ImportPlan, category: Category,
           position: int) -> Service:
    service = Service(
        category=category, name=(plan.names.get(upstream.pk) or upstream.name)[:500],
        type=upstream.type, description=plan.descriptions.get(upstream.pk,
                                                              upstream.description),
        min_quantity=upstream.min_quantity, max_quantity=max(upstream.max_quantity,
                                                             upstream.min_quantity),
        refill=upstream.refill, cancel=upstream.cancel, dripfeed=upstream.dripfeed,
        markup_percent=plan.markup_percent, fixed_rate=plan.fixed_rate, position=position,
        sync_name=plan.sync_name, sync_description=plan.sync_description,
        sync_bounds=plan.sync_bounds)
    return service


def _priced(upstream: ProviderService, service: Service) -> tuple[Decimal | None,
                                                                  Decimal | None]:
    """Cost and list price of an unsaved service routed to `upstream` alone: what
    pricing.base_rate gives once it is saved (a draft has no routes to read)."""
    if not (upstream.offered and upstream.provider.buying):
        return None, None
    cost = upstream.provider.to_panel_currency(upstream.cost_rate)
    return cost, max(unguarded_rate(service, cost), floor_rate(cost))


def _preview_row(upstream: ProviderService, service: Service) -> PreviewRow:
    cost, price = _priced(upstream, service)
    return PreviewRow(upstream=upstream, service=service, cost=cost, price=price)


def _categories(names: set[str], *, create: bool) -> dict[str, Category]:
    """Ours by name; missing ones created at the end of the list (or, for a preview, unsaved
    stand-ins with no markup of their own)."""
    existing = {c.name: c for c in Category.objects.filter(name__in=names)}
    missing = sorted(names - set(existing))
    if not create:
        return {**existing, **{name: Category(name=name) for name in missing}}
    after = (Category.objects.aggregate(last=Max("position"))["last"] or 0) + 1
    created = Category.objects.bulk_create(
        Category(name=name, position=after + i) for i, name in enumerate(missing))
    return {**existing, **{c.name: c for c in created}}


def _next_positions(categories: Iterable[Category]) -> dict[int, int]:
    ids = [c.pk for c in categories]
    last = dict(Service.objects.filter(category_id__in=ids).values("category_id")
                .annotate(last=Max("position")).values_list("category_id", "last"))
    return {pk: (last[pk] + 1 if last.get(pk) is not None else 0) for pk in ids}


# --- later syncs --------------------------------------------------------------------------

def follow_upstream(provider_service_ids: list[int]) -> int:
    """After a sync changed these upstream services: copy name, description and min/max to
    the services whose first usable route is one of them and that allow it (sync_name, …).
    Returns how many services changed; a constant number of queries."""
    wanted = Q(sync_name=True) | Q(sync_description=True) | Q(sync_bounds=True)
    services = (Service.objects.with_routes().filter(wanted)
                .filter(routes__provider_service_id__in=provider_service_ids).distinct())
    changed_ids = set(provider_service_ids)
    touched = []
    for service in services:
        routes = service.usable_routes()
        if not routes or routes[0].provider_service_id not in changed_ids:
            continue
        if _copy_upstream(service, routes[0].provider_service):
            touched.append(service)
    Service.objects.bulk_update(touched, ["name", "description", "min_quantity",
                                          "max_quantity"])
    return len(touched)


def _copy_upstream(service: Service, upstream: ProviderService) -> bool:
    before = (service.name, service.description, service.min_quantity, service.max_quantity)
    if service.sync_name:
        service.name = upstream.name
    if service.sync_description:
        service.description = upstream.description
    if service.sync_bounds and upstream.min_quantity <= upstream.max_quantity:
        service.min_quantity, service.max_quantity = upstream.min_quantity, upstream.max_quantity
    return before != (service.name, service.description, service.min_quantity,
                      service.max_quantity)
