"""The panel's URLs plus the floors bench/pages.py measures its pages against: the same rows
(every column the page shows, from the queries those columns need), rendered by a bare
template with no layout, navigation, filters, pager, forms or badges."""

from typing import cast

from django.http import HttpRequest, HttpResponse
from django.template import Context, Template
from django.urls import path

from orders import pricing
from orders.models import Order, Service
from orders.views.history import average_times
from panel.models import User
from panel.urls import urlpatterns as panel_urlpatterns

_ROWS = Template("<table>{% for r in rows %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}"
                 "</tr>{% endfor %}</table>")


def _render(rows: list[tuple[object, ...]]) -> HttpResponse:
    return HttpResponse(_ROWS.render(Context({"rows": rows})))


def _customer(request: HttpRequest) -> User:
    return cast(User, request.user)  # every bench request is logged in


def _priced(request: HttpRequest, services: list[Service]) -> list[tuple[object, ...]]:
    """A service as the pages show it: id, name, this customer's rate, min, max, average
    time, refill days, cancel, description."""
    user = _customer(request)
    custom = dict(user.custom_rates.values_list("service_id", "rate"))
    averages = average_times([s.pk for s in services])
    return [(s.pk, s.name, pricing.customer_rate(s, user, custom), s.min_quantity,
             s.max_quantity, averages.get(s.pk), s.refill_days if s.refill else None,
             s.cancel, s.description) for s in services]


def services_floor(request: HttpRequest) -> HttpResponse:
    """A page of 100 services at the customer's prices, as /services/ lists them, each
    category's name heading its services."""
    services = list(Service.objects.enabled().with_routes().order_by(
        "category__position", "position", "id")[:100])
    rows: list[tuple[object, ...]] = []
    heading = None
    for service, row in zip(services, _priced(request, services), strict=True):
        if service.category.name != heading:
            heading = service.category.name
            rows.append((heading,))
        rows.append(row)
    return _render(rows)


def search_floor(request: HttpRequest) -> HttpResponse:
    """Up to 30 services matching the search, as the new-order page's search returns them:
    id, name and this customer's rate."""
    query = request.GET.get("q", "")
    services = list(Service.objects.enabled().with_routes()
                    .filter(name__icontains=query).order_by("id")[:30])
    user = _customer(request)
    custom = dict(user.custom_rates.values_list("service_id", "rate"))
    return _render([(s.pk, s.name, pricing.customer_rate(s, user, custom)) for s in services])


def new_order_floor(request: HttpRequest) -> HttpResponse:
    """The chosen service at the customer's price and the 5 latest orders beside it."""
    service = Service.objects.enabled().with_routes().get(pk=request.GET["service"])
    latest = Order.objects.for_customer(_customer(request).pk).select_related("service")[:5]
    rows = _priced(request, [service]) + [(o.pk, o.service.name, o.charge, o.status)
                                          for o in latest]
    return _render(rows)


def orders_floor(request: HttpRequest) -> HttpResponse:
    """Page one of the customer's orders (25) with their services, as /orders/ lists them."""
    mine = Order.objects.for_customer(_customer(request).pk)
    rows: list[tuple[object, ...]] = [(mine.count(),)]
    rows += [(o.pk, o.created_at, o.link, o.charge - o.refunded, o.start_count, o.quantity,
              o.service.name, o.remains, o.customer_status)
             for o in mine.select_related("service").order_by("-id")[:25]]
    return _render(rows)


urlpatterns = [
    *panel_urlpatterns,
    path("floor/services", services_floor),
    path("floor/search", search_floor),
    path("floor/new-order", new_order_floor),
    path("floor/orders", orders_floor),
]
