"""The panel's URLs plus the floors bench/admin.py measures the admin pages against: the
same page of rows from the same queries, rendered by a bare template with no layout,
filters or forms."""

from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template import Context, Template
from django.urls import path

from desk.views.admin_catalog import CatalogFilter
from orders import pricing
from orders.importing import importable
from orders.models import Route, Service
from panel.urls import urlpatterns as panel_urlpatterns
from providers.models import Provider

_ROWS = Template("<table>{% for u in rows %}<tr><td>{{ u.upstream_id }}</td><td>{{ u.name }}"
                 "</td><td>{{ u.cost_rate }}</td><td>{% for r in u.routes.all %}"
                 "{{ r.service.name }} {{ r.service.category.name }}{% endfor %}</td></tr>"
                 "{% endfor %}</table>")


def catalog_floor(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk)
    sold = Prefetch("routes", queryset=Route.objects.select_related("service__category"))
    rows = CatalogFilter(request.GET, []).apply(importable(provider))  # the page's filter
    page = Paginator(rows.defer("raw").prefetch_related(sold), 50).get_page(1)
    return HttpResponse(_ROWS.render(Context({"rows": page})))


_SERVICES = Template("<table>{% for s, cost, price in rows %}<tr><td>{{ s.pk }}</td><td>"
                     "{{ s.name }}</td><td>{{ s.category.name }}</td><td>{{ cost }}</td><td>"
                     "{{ price }}</td></tr>{% endfor %}</table>")


def services_floor(request: HttpRequest) -> HttpResponse:
    """The services editor's first page: 50 services with their routes, cost and price."""
    page = Paginator(Service.objects.with_routes().order_by("category__position", "position",
                                                            "id"), 50).get_page(1)
    rows = [(s, pricing.cost_rate(s), pricing.base_rate(s)) for s in page]
    return HttpResponse(_SERVICES.render(Context({"rows": rows})))


urlpatterns = [path("floor/catalog/<int:pk>/", catalog_floor),
               path("floor/services/", services_floor), *panel_urlpatterns]
