"""The admin desk's services and prices: the services editor (a page of 50 whatever the
catalog's size, in a constant number of queries), one service with its failover routes,
bulk edits, a customer's prices, the categories, and what the margin guard did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from desk.access import admin_view
from desk.models import audit
from desk.price_forms import (
    BulkServiceForm,
    CategoryForm,
    CategoryFormSet,
    RouteForm,
    ServiceFilterForm,
    ServiceForm,
)
from desk.views import redirect_back
from orders import pricing
from orders.models import Category, CustomRate, Route, Service
from panel.models import User
from providers.models import ServiceChange

PER_PAGE = 50


def _admin(request: HttpRequest) -> User:
    return cast(User, request.user)


@dataclass
class PriceRow:
    """A service as the editor shows it: cost, list price and margin side by side."""

    service: Service
    cost: Decimal | None
    price: Decimal | None
    margin: Decimal | None
    held: bool
    customer_price: Decimal | None = None

    @property
    def under_minimum(self) -> bool:
        return self.held or pricing.under_minimum(self.price, self.cost)


def price_rows(services: Iterable[Service], customer: User | None = None) -> list[PriceRow]:
    """Each service priced from its prefetched routes; a customer's custom rates in one
    query for the whole page."""
    services = list(services)
    rates: dict[int, Decimal] = {}
    if customer is not None:
        rates = dict(CustomRate.objects.filter(user=customer, service__in=services)
                     .values_list("service_id", "rate"))
    rows = []
    for service in services:
        cost, price = pricing.cost_rate(service), pricing.base_rate(service)
        rows.append(PriceRow(
            service, cost, price, pricing.margin_percent(price, cost),
            pricing.held_at_floor(service),
            pricing.customer_rate(service, customer, rates) if customer else None))
    return rows


def _customer(form: ServiceFilterForm) -> User | None:
    name = (form.cleaned_data.get("customer") or "").strip() if form.is_valid() else ""
    return User.objects.filter(username__iexact=name).first() if name else None


@admin_view
def services(request: HttpRequest) -> HttpResponse:
    form = ServiceFilterForm(request.GET or None)
    listed = form.filter(Service.objects.with_routes()).order_by(
        "category__position", "category__name", "position", "id")
    page = Paginator(listed, PER_PAGE).get_page(request.GET.get("page"))
    customer = _customer(form)
    if form.is_valid() and form.cleaned_data.get("customer") and customer is None:
        messages.warning(request, _("No customer is called that."))
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "desk/admin/services.html", {
        "form": form, "page": page, "page_query": params.urlencode(),
        "rows": price_rows(page.object_list, customer), "customer": customer,
        "bulk": BulkServiceForm(), "categories": Category.objects.all(),
        "min_margin": settings.MIN_MARGIN_PERCENT})


def _changed(service_ids: list[int]) -> None:
    """What customers see of a price change goes to their Service updates page."""
    transaction.on_commit(lambda: pricing.record_service_updates(service_ids))


@admin_view
@require_POST
def services_bulk(request: HttpRequest) -> HttpResponse:
    data = request.POST.copy()
    data["ids"] = ",".join(request.POST.getlist("ids"))
    form = BulkServiceForm(data)
    back = reverse("desk:admin_services")
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(str(e) for e in errors))
        return redirect_back(request, back)
    ids, action = form.cleaned_data["ids"], form.cleaned_data["action"]
    chosen = Service.objects.filter(pk__in=ids)
    with transaction.atomic():
        if action == "markup":
            count = chosen.update(markup_percent=form.cleaned_data["markup_percent"],
                                  fixed_rate=None)
        elif action == "category":
            count = chosen.update(category=form.cleaned_data["category"])
        else:
            count = chosen.update(enabled=action == "enable")
        audit(_admin(request), f"services_{action}", ids=ids,
              markup_percent=str(form.cleaned_data.get("markup_percent") or ""),
              category=getattr(form.cleaned_data.get("category"), "pk", None))
        _changed(ids)
    messages.success(request, ngettext("%(count)s service changed.", "%(count)s services changed.",
                                       count) % {"count": count})
    return redirect_back(request, back)


def _service(pk: int) -> Service:
    service = Service.objects.with_routes().filter(pk=pk).first()
    if service is None:
        raise Http404
    return service


def _route_rows(service: Service, price: Decimal | None) -> list[dict[str, Any]]:
    rows = []
    for route in service.routes.all():
        cost = route.cost_rate()
        rows.append({"route": route, "cost": cost, "usable": route.is_usable(),
                     "margin": pricing.margin_percent(price, cost),
                     "under": pricing.under_minimum(price, cost)})
    return rows


@admin_view
def service_edit(request: HttpRequest, pk: int) -> HttpResponse:
    service = _service(pk)
    form = ServiceForm(request.POST or None, instance=service)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            audit(_admin(request), "service_edited", service=service.pk,
                  fields=sorted(form.changed_data))
            _changed([service.pk])
        messages.success(request, _("Service #%(id)s saved.") % {"id": service.pk})
        return redirect("desk:admin_service", pk=service.pk)
    [row] = price_rows([service])
    return render(request, "desk/admin/service.html", {
        "service": service, "form": form, "row": row,
        "routes": _route_rows(service, row.price), "route_form": RouteForm(service=service)})


@admin_view
@require_POST
def route_add(request: HttpRequest, pk: int) -> HttpResponse:
    service = _service(pk)
    form = RouteForm(request.POST, service=service)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(str(e) for e in errors))
        return redirect("desk:admin_service", pk=pk)
    last = max((r.priority for r in service.routes.all()), default=-1)
    with transaction.atomic():
        route = Route.objects.create(service=service, priority=last + 1,
                                     provider_service=form.cleaned_data["provider_service"])
        audit(_admin(request), "route_added", service=pk, route=route.pk,
              provider_service=route.provider_service_id)
        _changed([pk])
    messages.success(request, _("Route added as failover number %(n)s.") % {
        "n": len(service.routes.all()) + 1})
    return redirect("desk:admin_service", pk=pk)


@admin_view
@require_POST
def route_action(request: HttpRequest, pk: int, route_pk: int) -> HttpResponse:
    """Move a route up or down the failover order, or remove it."""
    service = _service(pk)
    routes = list(service.routes.all())
    index = next((i for i, r in enumerate(routes) if r.pk == route_pk), None)
    action = request.POST.get("action")
    if index is None or action not in ("up", "down", "remove"):
        raise Http404
    with transaction.atomic():
        if action == "remove":
            routes.pop(index).delete()
        else:
            other = index - 1 if action == "up" else index + 1
            if 0 <= other < len(routes):
                routes[index], routes[other] = routes[other], routes[index]
        for priority, route in enumerate(routes):
            route.priority = priority
        Route.objects.bulk_update(routes, ["priority"])
        audit(_admin(request), f"route_{action}", service=pk, route=route_pk)
        _changed([pk])
    return redirect("desk:admin_service", pk=pk)


@admin_view
def categories(request: HttpRequest) -> HttpResponse:
    formset = CategoryFormSet(request.POST if request.method == "POST" else None,
                              queryset=Category.objects.all(), prefix="c")
    new = CategoryForm(request.POST if "add" in request.POST else None, prefix="new")
    if request.method == "POST":
        valid = new.is_valid() if "add" in request.POST else formset.is_valid()
        if valid:
            with transaction.atomic():
                saved = [new.save()] if "add" in request.POST else formset.save()
                audit(_admin(request), "categories_saved",
                      categories=[c.pk for c in saved])
                _changed(list(Service.objects.filter(category__in=saved)
                              .values_list("pk", flat=True)))
            messages.success(request, _("Categories saved."))
            return redirect("desk:admin_categories")
    counts = dict(Service.objects.order_by().values("category_id")
                  .annotate(n=Count("pk"))
                  .values_list("category_id", "n"))
    return render(request, "desk/admin/categories.html", {
        "formset": formset, "new": new,
        "rows": [(f, counts.get(f.instance.pk, 0)) for f in formset.forms]})


@admin_view
def margin_guard(request: HttpRequest) -> HttpResponse:
    actions = (ServiceChange.objects.filter(note__startswith="margin guard")
               .select_related("provider_service__provider"))
    page = Paginator(actions, PER_PAGE).get_page(request.GET.get("page"))
    held = pricing.held_at_floor_ids(Service.objects.all())
    first = list(Service.objects.with_routes().filter(pk__in=held)
                 .order_by("category__position", "position", "id")[:PER_PAGE])
    return render(request, "desk/admin/margin_guard.html", {
        "page": page, "page_query": "", "held_count": len(held),
        "held": price_rows(first)})
