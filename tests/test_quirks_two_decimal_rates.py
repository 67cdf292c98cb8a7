"""Quirk 2 of issue 14: an upstream that stores rates with two decimals, so a cost of 0.004
per 1000 comes through as "0.00" (the sandbox's `two_decimal_rates`).

A route whose cost is zero or below the smallest money unit is not sold until an admin
confirms the cost in the Django admin, and the catalog change log says why. End to end:
sync, import, placing (the workflow and API v2), the admin's confirmation, dispatch."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from orders import dispatch
from orders.errors import INCORRECT_SERVICE, Refusal
from orders.importing import import_services
from orders.models import Order, Route, ServiceUpdate
from orders.placing import place_order
from panel.models import ApiKey
from providers.models import ProviderService, ServiceChange
from providers.sync import sync_catalog

pytestmark = pytest.mark.django_db

TINY = 101  # the sandbox's upstream service whose real cost here is 0.004 per 1000


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-12345678")


@pytest.fixture
def imported(provider, sandbox):
    """The catalog as the panel knew it before the upstream's rounding: 0.004 per 1000."""
    sandbox.update_service(TINY, rate="0.004")
    assert sync_catalog(provider).ok
    import_services(provider)
    route = Route.objects.select_related("service").get(
        provider_service__provider=provider, provider_service__upstream_id=TINY)
    return route.service


def _upstream(provider) -> ProviderService:
    return ProviderService.objects.select_related("provider").get(provider=provider,
                                                                  upstream_id=TINY)


def _order_params() -> dict[str, object]:
    return {"link": "https://x.com/tiny", "quantity": 1000}


def _updates(service) -> list[str]:
    return list(ServiceUpdate.objects.filter(service=service).order_by("created_at", "id")
                .values_list("kind", flat=True))


def test_a_cost_rounded_to_zero_is_not_sold_until_an_admin_confirms_it(
        provider, sandbox, imported, alice, admin_user, client):
    assert _upstream(provider).cost_rate == Decimal("0.004")
    place_order(alice, imported.pk, _order_params())  # sold at its real cost so far
    sandbox.set_quirk("two_decimal_rates")

    assert sync_catalog(provider).ok

    upstream = _upstream(provider)
    assert upstream.cost_rate == 0 and upstream.cost_unconfirmed
    change = ServiceChange.objects.filter(provider_service=upstream, field="rate").latest("id")
    assert (change.old_value, change.new_value) == ("0.004000", "0.000000")
    assert "below the smallest money unit" in change.note and "confirms" in change.note
    assert len(mail.outbox) == 1 and "Costs to confirm" in mail.outbox[0].subject
    assert f"#{TINY}" in mail.outbox[0].body
    # Customers see it withdrawn, and neither the order form nor the API sells it.
    assert _updates(imported) == ["new", "disabled"]
    with pytest.raises(Refusal) as refused:
        place_order(alice, imported.pk, _order_params())
    assert refused.value.message == INCORRECT_SERVICE
    key = ApiKey.issue(alice)[1]
    reply = client.post("/api/v2", {"key": key, "action": "add", "service": imported.pk,
                                    **_order_params()}).json()
    assert reply == {"error": INCORRECT_SERVICE}
    # The order placed before the sync is not bought at a cost nobody confirmed.
    queued = Order.objects.get(service=imported)
    dispatch.dispatch_one(queued.pk)
    queued.refresh_from_db()
    assert queued.status == Order.Status.FAILED and queued.refunded == queued.charge
    assert "confirms" in queued.error and sandbox.adds() == []

    # The admin checks upstream and confirms it in the Django admin.
    client.force_login(admin_user)
    changelist = reverse("admin:providers_providerservice_changelist")
    page = client.get(changelist, {"cost_confirmed__exact": "0"})
    assert page.status_code == 200 and b"Confirm tiny costs" in page.content
    response = client.post(changelist, {"action": "confirm_tiny_costs",
                                        "_selected_action": [upstream.pk]})
    assert response.status_code == 302

    upstream = _upstream(provider)
    assert upstream.cost_confirmed and not upstream.cost_unconfirmed
    assert "confirmed by boss" in ServiceChange.objects.filter(
        provider_service=upstream).latest("id").note
    assert _updates(imported) == ["new", "disabled", "enabled"]
    order = place_order(alice, imported.pk, _order_params())
    assert order.charge > 0
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING

    # The same cost again keeps the confirmation; a confirmation is of one cost only.
    assert sync_catalog(provider).ok and _upstream(provider).cost_confirmed
    sandbox.set_quirk("two_decimal_rates", on=False)
    assert sync_catalog(provider).ok
    assert not _upstream(provider).cost_confirmed and not _upstream(provider).cost_unconfirmed
    sandbox.set_quirk("two_decimal_rates")
    assert sync_catalog(provider).ok and _upstream(provider).cost_unconfirmed


def test_a_new_service_listed_at_zero_is_imported_but_not_sold(provider, sandbox, alice):
    sandbox.update_service(TINY, rate="0.004")
    sandbox.set_quirk("two_decimal_rates")

    assert sync_catalog(provider).ok
    import_services(provider)

    upstream = _upstream(provider)
    assert upstream.cost_unconfirmed
    note = ServiceChange.objects.get(provider_service=upstream, field="rate").note
    assert "not sold until an admin confirms it" in note
    service = Route.objects.get(provider_service=upstream).service
    with pytest.raises(Refusal):
        place_order(alice, service.pk, _order_params())
    assert _updates(service) == []  # never listed for customers


def test_the_admin_change_page_shows_and_takes_the_confirmation(
        provider, sandbox, admin_user, client):
    sandbox.update_service(TINY, rate="0.004")
    sandbox.set_quirk("two_decimal_rates")
    assert sync_catalog(provider).ok
    upstream = _upstream(provider)
    client.force_login(admin_user)
    url = reverse("admin:providers_providerservice_change", args=[upstream.pk])
    form = client.get(url)
    assert b"tiny cost confirmed" in form.content.lower()

    data = {name: getattr(upstream, name) for name in (
        "upstream_id", "name", "type", "category", "cost_rate", "min_quantity",
        "max_quantity", "description")}
    data.update(provider=provider.pk, raw='{"service": 101}', offered="on", cost_confirmed="on",
                first_seen_at_0=upstream.first_seen_at.date(), first_seen_at_1="00:00:00",
                updated_at_0=upstream.updated_at.date(), updated_at_1="00:00:00")
    response = client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert _upstream(provider).cost_confirmed
    assert "confirmed by boss" in ServiceChange.objects.filter(
        provider_service=upstream).latest("id").note
