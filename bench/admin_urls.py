"""The panel's URLs plus the floor bench/admin.py measures the catalog page against: the
same page of upstream rows from the same queries, rendered by a bare template with no
layout, filters or import form."""

from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template import Context, Template
from django.urls import path

from orders.importing import importable
from orders.models import Route
from panel.urls import urlpatterns as panel_urlpatterns
from providers.models import Provider

_ROWS = Template("<table>{% for u in rows %}<tr><td>{{ u.upstream_id }}</td><td>{{ u.name }}"
                 "</td><td>{{ u.cost_rate }}</td><td>{% for r in u.routes.all %}"
                 "{{ r.service.name }} {{ r.service.category.name }}{% endfor %}</td></tr>"
                 "{% endfor %}</table>")


def catalog_floor(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk)
    sold = Prefetch("routes", queryset=Route.objects.select_related("service__category"))
    page = Paginator(importable(provider).prefetch_related(sold), 100).get_page(1)
    return HttpResponse(_ROWS.render(Context({"rows": page})))


urlpatterns = [path("floor/catalog/<int:pk>/", catalog_floor), *panel_urlpatterns]
