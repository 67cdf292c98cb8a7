"""The admin desk's services and prices: the editor shows cost, list price and margin, edits
one service, its failover routes, a selection in bulk, the categories, a customer's prices
and what the margin guard did, in a number of queries that does not grow with the rows."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from desk.models import AuditEntry
from orders import pricing
from orders.models import Category, CustomRate, Route, Service, ServiceUpdate
from orders.placing import quote
from providers.models import ProviderService, ServiceChange
from tests.conftest import make_customer, make_service
from tests.test_admin_access import make_admin

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client):
    client.force_login(make_admin())
    return client


@pytest.fixture
def services(catalog):
    upstreams = list(ProviderService.objects.filter(provider=catalog, type="Default")
                     .order_by("upstream_id")[:3])
    made = []
    for upstream in upstreams:
        made.append(make_service(catalog, "Default",
                                 upstream={"upstream_id": upstream.upstream_id}))
    return made


def _queries(client, url, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured)


def test_the_list_shows_cost_price_and_margin_and_marks_the_floor(admin, services, settings):
    held = services[0]
    cost = pricing.cost_rate(Service.objects.with_routes().get(pk=held.pk))
    Service.objects.filter(pk=held.pk).update(fixed_rate=cost)  # no margin at all
    page = admin.get(reverse("desk:admin_services")).content.decode()
    assert f"{cost:.5f}" in page
    assert "at the floor" in page and "under-margin" in page
    floor = admin.get(reverse("desk:admin_services"), {"state": "floor"})
    assert [r.service.pk for r in floor.context["rows"]] == [held.pk]


def test_the_list_runs_the_same_queries_for_3_services_as_for_60(admin, catalog, services):
    alice = make_customer("alice")
    url = reverse("desk:admin_services")
    few = _queries(admin, url, customer="alice")
    upstream = ProviderService.objects.filter(provider=catalog, type="Default").first()
    category = Category.objects.first()
    for i in range(57):
        service = Service.objects.create(category=category, name=f"bulk {i}", max_quantity=10)
        Route.objects.create(service=service, provider_service=upstream)
    CustomRate.objects.create(user=alice, service=services[0], rate=Decimal("9"))
    assert _queries(admin, url, customer="alice") == few
    assert _queries(admin, url, customer="alice", page=2) == few


def test_a_customers_prices_apply_their_discount_and_custom_rate(admin, services):
    alice = make_customer("alice", discount_percent=Decimal("10"))
    custom = Decimal("123.45")
    CustomRate.objects.create(user=alice, service=services[1], rate=custom)
    rows = {r.service.pk: r for r in admin.get(reverse("desk:admin_services"),
                                               {"customer": "alice"}).context["rows"]}
    for service in services:
        expected = quote(alice, service.pk, {"link": "https://x.com/a",
                                             "quantity": service.min_quantity}).rate
        assert rows[service.pk].customer_price == expected
    assert rows[services[1].pk].customer_price == custom
    assert rows[services[0].pk].customer_price < rows[services[0].pk].price


def test_editing_a_service_sets_a_fixed_price_and_logs_it(admin, services):
    service = services[0]
    data = {"enabled": "on", "name": "Renamed", "description": "d",
            "category": service.category_id, "min_quantity": service.min_quantity,
            "max_quantity": service.max_quantity, "refill_days": 30,
            "markup_percent": "", "fixed_rate": "99.5"}
    response = admin.post(reverse("desk:admin_service", args=[service.pk]), data)
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.fixed_rate == Decimal("99.5") and service.name == "Renamed"
    assert AuditEntry.objects.filter(action="service_edited").exists()
    assert ServiceUpdate.objects.filter(service=service, new_rate=Decimal("99.5")).exists()


def test_min_and_max_must_stay_inside_the_primary_routes(admin, services):
    service = services[0]
    upstream = service.routes.get().provider_service
    data = {"enabled": "on", "name": service.name, "category": service.category_id,
            "min_quantity": upstream.min_quantity, "max_quantity": upstream.max_quantity + 1,
            "refill_days": 30}
    response = admin.post(reverse("desk:admin_service", args=[service.pk]), data)
    assert response.status_code == 200
    assert "inside the primary route" in response.content.decode()
    service.refresh_from_db()
    assert service.max_quantity == upstream.max_quantity


def test_failover_routes_are_added_reordered_and_removed(admin, catalog, services):
    service = services[0]
    second = services[1].routes.get().provider_service
    url = reverse("desk:admin_service_route_add", args=[service.pk])
    admin.post(url, {"provider": catalog.pk, "upstream_id": second.upstream_id})
    routes = list(service.routes.order_by("priority"))
    assert [r.provider_service for r in routes][1] == second
    page = admin.get(reverse("desk:admin_service", args=[service.pk])).content.decode()
    cost = Route.objects.select_related("provider_service__provider").get(pk=routes[1].pk)
    assert f"{cost.cost_rate():.5f}" in page  # each route shows its current cost
    # The same route twice is refused.
    admin.post(url, {"provider": catalog.pk, "upstream_id": second.upstream_id})
    assert service.routes.count() == 2
    action = reverse("desk:admin_service_route", args=[service.pk, routes[1].pk])
    admin.post(action, {"action": "up"})
    assert list(service.routes.order_by("priority").values_list("pk", flat=True)) == [
        routes[1].pk, routes[0].pk]
    admin.post(action, {"action": "remove"})
    assert list(service.routes.values_list("pk", flat=True)) == [routes[0].pk]


def test_bulk_edit_sets_markup_category_and_enabled(admin, services):
    ids = [s.pk for s in services[:2]]
    other = Category.objects.create(name="Other")
    url = reverse("desk:admin_services_bulk")
    Service.objects.filter(pk=ids[0]).update(fixed_rate=Decimal(50))
    admin.post(url, {"ids": ids, "action": "markup", "markup_percent": "40"})
    admin.post(url, {"ids": ids, "action": "category", "category": other.pk})
    admin.post(url, {"ids": ids, "action": "disable"})
    for service in Service.objects.filter(pk__in=ids):
        assert service.markup_percent == 40 and service.fixed_rate is None
        assert service.category == other and not service.enabled
    assert Service.objects.get(pk=services[2].pk).enabled
    assert AuditEntry.objects.filter(action__startswith="services_").count() == 3


def test_categories_order_markup_and_enable_take_services_off_sale(admin, services, alice):
    category = services[0].category
    formset = {"c-TOTAL_FORMS": 1, "c-INITIAL_FORMS": 1, "c-0-id": category.pk,
               "c-0-name": category.name, "c-0-position": 3, "c-0-markup_percent": "50"}
    admin.post(reverse("desk:admin_categories"), formset)  # enabled unticked
    category.refresh_from_db()
    assert category.position == 3 and category.markup_percent == 50 and not category.enabled
    assert not Service.objects.enabled().filter(category=category).exists()
    assert reverse("desk:admin_categories")
    admin.post(reverse("desk:admin_categories"), {"add": "1", "new-name": "Fresh",
                                                  "new-position": 1, "new-enabled": "on"})
    assert Category.objects.filter(name="Fresh", enabled=True).exists()


def test_a_disabled_category_is_not_sold(services, alice, client):
    Category.objects.filter(pk=services[0].category_id).update(enabled=False)
    from orders.errors import Refusal
    with pytest.raises(Refusal):
        quote(alice, services[0].pk, {"link": "https://x.com/a",
                                      "quantity": services[0].min_quantity})
    client.force_login(alice)
    assert services[0].name not in client.get(reverse("services")).content.decode()


def test_the_margin_guard_page_lists_its_actions_and_the_services_at_the_floor(
        admin, catalog, services, settings):
    held = services[0]
    Service.objects.filter(pk=held.pk).update(markup_percent=Decimal(1))
    upstream = held.routes.get().provider_service
    ServiceChange.objects.create(provider_service=upstream, field="rate", old_value="1",
                                 new_value="2", note="margin guard: service raised")
    response = admin.get(reverse("desk:admin_service_guard"))
    assert [r.service.pk for r in response.context["held"]] == [held.pk]
    assert response.context["held_count"] == 1
    assert "margin guard: service raised" in response.content.decode()


def test_the_quick_floor_list_agrees_with_pricing(services, settings):
    cost = pricing.cost_rate(Service.objects.with_routes().get(pk=services[0].pk))
    settings.MIN_MARGIN_PERCENT = Decimal(5)
    Service.objects.filter(pk=services[0].pk).update(fixed_rate=cost * Decimal("1.04"))
    Service.objects.filter(pk=services[1].pk).update(markup_percent=Decimal("4.99"))
    Service.objects.filter(pk=services[2].pk).update(markup_percent=Decimal("5"))
    in_sql = set(pricing.held_at_floor_ids(Service.objects.all()))
    in_python = {s.pk for s in Service.objects.with_routes() if pricing.held_at_floor(s)}
    assert in_sql == in_python == {services[0].pk, services[1].pk}


def test_staff_without_the_admin_area_change_nothing(client, services):
    from tests.conftest import make_staff

    client.force_login(make_staff("sam", "orders", "balances"))
    service = services[0]
    response = client.post(reverse("desk:admin_services_bulk"),
                           {"ids": [service.pk], "action": "disable"})
    assert response.status_code == 403
    response = client.post(reverse("desk:admin_service", args=[service.pk]),
                           {"name": "taken over", "fixed_rate": "0.01"})
    assert response.status_code == 403
    client.force_login(make_customer("carol"))
    assert client.post(reverse("desk:admin_service_route", args=[
        service.pk, service.routes.get().pk]), {"action": "remove"}).status_code == 404
    service.refresh_from_db()
    assert service.enabled and service.name != "taken over" and service.fixed_rate is None
    assert service.routes.count() == 1
    assert not AuditEntry.objects.exists()
