"""Prices: cost × conversion × (1 + markup), per-customer discounts and rates, and a floor
of cost plus the minimum margin that nothing sells below."""

from decimal import Decimal

import pytest

from orders.models import CustomRate
from orders.pricing import base_rate, charge_for, cost_rate, customer_rate
from providers.models import ProviderService, ServiceChange
from providers.sync import sync_catalog
from tests.conftest import make_customer, make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(catalog):
    return make_service(catalog, "Default")


def _upstream(service) -> ProviderService:
    return service.routes.get().provider_service


def _reload(service):
    return type(service).objects.with_routes().get(pk=service.pk)


def test_markup_comes_from_the_service_else_its_category_else_the_default(service, settings):
    settings.DEFAULT_MARKUP_PERCENT = Decimal("30")
    cost = _upstream(service).cost_rate
    assert base_rate(_reload(service)) == (cost * Decimal("1.3")).quantize(Decimal("0.00001"))

    service.category.markup_percent = Decimal("50")
    service.category.save()
    assert base_rate(_reload(service)) == (cost * Decimal("1.5")).quantize(Decimal("0.00001"))

    service.markup_percent = Decimal("100")
    service.save()
    assert base_rate(_reload(service)) == (cost * 2).quantize(Decimal("0.00001"))


def test_the_providers_conversion_rate_applies_to_the_cost(service, catalog):
    catalog.rate_to_panel = Decimal("0.5")
    catalog.save()

    assert cost_rate(_reload(service)) == _upstream(service).cost_rate / 2


def test_a_fixed_rate_overrides_the_markup(service):
    service.fixed_rate = Decimal("99.12345")
    service.save()

    assert base_rate(_reload(service)) == Decimal("99.12345")


def test_customer_discount_and_custom_rate(service, settings):
    settings.MIN_MARGIN_PERCENT = Decimal("0")
    service.fixed_rate = Decimal("100")
    service.save()
    service = _reload(service)
    vip = make_customer("vip", discount_percent=Decimal("10"))
    other = make_customer("other")

    assert customer_rate(service, vip) == Decimal("90")
    assert customer_rate(service, other) == Decimal("100")

    CustomRate.objects.create(user=other, service=service, rate=Decimal("80"))
    assert customer_rate(service, other) == Decimal("80")


def test_no_discount_or_custom_rate_sells_below_cost_plus_the_minimum_margin(service, settings):
    settings.MIN_MARGIN_PERCENT = Decimal("5")
    service = _reload(service)
    floor = (_upstream(service).cost_rate * Decimal("1.05")).quantize(Decimal("0.00001"))
    generous = make_customer("generous", discount_percent=Decimal("100"))
    CustomRate.objects.create(user=make_customer("stale"), service=service,
                              rate=Decimal("0.00001"))

    assert customer_rate(service, generous) == floor
    assert customer_rate(service, type(generous).objects.get(username="stale")) == floor


def test_prices_follow_cost_changes_on_their_own(service, sandbox, catalog):
    before = base_rate(_reload(service))
    sandbox.update_service(_upstream(service).upstream_id, rate="10.0")
    sync_catalog(catalog)

    after = base_rate(_reload(service))
    assert after != before
    assert after == (Decimal("10") * Decimal("1.3")).quantize(Decimal("0.00001"))


def test_charges_round_half_up_and_packages_are_flat():
    assert charge_for(Decimal("0.90"), 1234, "Default") == Decimal("1.11060")
    assert charge_for(Decimal("1.23456"), 5, "Default") == Decimal("0.00617")
    assert charge_for(Decimal("7.5"), 1, "Package") == Decimal("7.5")
    assert charge_for(Decimal("0.001"), 1, "Default") == Decimal("0.00001")  # never free


@pytest.mark.parametrize("action", ["reprice", "disable"])
def test_margin_guard_reprices_or_disables_when_a_cost_rise_eats_the_margin(
        service, sandbox, catalog, settings, action):
    settings.MARGIN_GUARD_ACTION = action
    settings.MIN_MARGIN_PERCENT = Decimal("5")
    service.fixed_rate = _upstream(service).cost_rate * Decimal("1.2")
    service.save()
    sandbox.update_service(_upstream(service).upstream_id,
                           rate=str(_upstream(service).cost_rate * 2))

    sync_catalog(catalog)

    service.refresh_from_db()
    new_cost = _upstream(service).cost_rate
    note = ServiceChange.objects.get(note__startswith="margin guard")
    assert f"service #{service.pk}" in note.note
    if action == "disable":
        assert not service.enabled and note.note.endswith("disabled")
    else:
        assert service.enabled
        assert service.fixed_rate == (new_cost * Decimal("1.05")).quantize(Decimal("0.00001"))
        assert "fixed rate raised" in note.note


def test_margin_guard_leaves_services_that_still_make_their_margin(service, sandbox, catalog):
    sandbox.update_service(_upstream(service).upstream_id,
                           rate=str(_upstream(service).cost_rate * Decimal("1.01")))

    sync_catalog(catalog)

    assert not ServiceChange.objects.filter(note__startswith="margin guard").exists()
