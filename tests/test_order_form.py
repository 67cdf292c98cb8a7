"""The New order page: every service type placed through the form, the live charge equal to
what is charged, errors beside their field, the service search, and nothing placed twice."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders.errors import NOT_ENOUGH_FUNDS, quantity_below
from orders.models import Category, CustomRate, Order, Route, Service
from orders.params import SERVICE_TYPES, TYPE_SPECS
from panel.models import LedgerEntry
from tests.conftest import make_customer, make_service, valid_add_params

pytestmark = pytest.mark.django_db

HOME = "/"


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def form_values(service: Service, **changes: Any) -> dict[str, str]:
    """What a customer types into the form for a valid order of `service`."""
    params = valid_add_params({"type": service.type, "min": service.min_quantity,
                               "service": service.pk})
    values = {name: "\n".join(map(str, value)) if isinstance(value, list) else str(value)
              for name, value in params.items()}
    values.update(changes)
    return values


def open_form(client: Client, service: Service) -> tuple[str, str]:
    """The page with `service` picked, and its one-time token."""
    response = client.get(HOME, {"service": service.pk})
    assert response.status_code == 200
    html = response.content.decode()
    [token] = re.findall(r'name="token" value="([0-9a-f-]{36})"', html)
    return html, token


def live_charge(client: Client, service: Service, values: dict[str, str]) -> str:
    response = client.post(reverse("order_charge"), {"service": service.pk, **values},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def charge_shown(fragment: str) -> Decimal:
    [amount] = re.findall(r'<strong id="charge-amount">([0-9.]+) [A-Z]{3}</strong>', fragment)
    return Decimal(amount)


def submit(client: Client, service: Service, values: dict[str, str],
           token: str | None = None) -> Any:
    if token is None:
        _, token = open_form(client, service)
    return client.post(HOME, {"service": service.pk, "token": token, **values})


def error_of(html: str, field: str) -> str:
    """The error shown beside `field`, checking it is tied to the input."""
    match = re.search(rf'<p class="field-error" id="id_{field}-error">([^<]*)</p>', html)
    assert match, f"no error beside {field}"
    assert re.search(rf'id="id_{field}"[^>]*aria-describedby="[^"]*id_{field}-error', html,
                     re.S), f"{field}'s input does not point at its error"
    return match.group(1)


# --- every type through the form ---------------------------------------------------------------


@pytest.mark.parametrize("service_type", SERVICE_TYPES)
def test_every_type_is_placed_through_the_form_at_the_charge_shown_live(
        alice_client, alice, catalog, service_type):
    service = make_service(catalog, service_type)
    values = form_values(service)
    html, token = open_form(alice_client, service)
    for type_field in TYPE_SPECS[service_type].fields:
        if not type_field.dripfeed or service.dripfeed:
            assert f'name="{type_field.name}"' in html, type_field.name
            assert f'<label for="id_{type_field.name}">' in html, type_field.name

    shown = charge_shown(live_charge(alice_client, service, values))
    response = submit(alice_client, service, values, token)

    assert response.status_code == 200
    order = Order.objects.get(user=alice)
    assert f"Order #{order.pk} is placed." in response.content.decode()
    assert f'href="/orders/{order.pk}/"' in response.content.decode()
    assert order.service == service
    assert order.charge == shown
    charged = LedgerEntry.objects.get(order_id=order.pk, kind=LedgerEntry.Kind.CHARGE)
    assert -charged.amount == shown
    alice.refresh_from_db()
    assert alice.balance == Decimal("100") - shown


def test_a_drip_fed_order_shows_its_total_and_is_charged_for_every_run(alice_client, alice,
                                                                          catalog):
    service = make_service(catalog, "Default", upstream={"dripfeed": True})
    values = form_values(service, quantity=str(service.min_quantity), runs="3", interval="15")

    fragment = live_charge(alice_client, service, values)
    submit(alice_client, service, values)

    total = service.min_quantity * 3
    assert f"= {total}" in fragment
    order = Order.objects.get(user=alice)
    assert (order.runs, order.interval, order.charged_units) == (3, 15, total)
    assert order.charge == charge_shown(fragment)


def test_the_expiry_date_of_the_form_reaches_the_order_as_api_v2_writes_it(alice_client,
                                                                            alice, catalog):
    service = make_service(catalog, "Subscriptions")
    expiry = timezone.localdate() + timedelta(days=40)

    submit(alice_client, service, form_values(service, expiry=expiry.isoformat()))

    assert Order.objects.get(user=alice).params["expiry"] == expiry.strftime("%d/%m/%Y")


# --- errors ----------------------------------------------------------------------------------


def test_a_quantity_below_the_minimum_is_shown_beside_the_quantity(alice_client, alice, catalog):
    service = make_service(catalog, "Default")
    values = form_values(service, quantity=str(service.min_quantity - 1))

    response = submit(alice_client, service, values)

    assert response.status_code == 400
    html = response.content.decode()
    assert error_of(html, "quantity") == quantity_below(service.min_quantity)
    assert 'aria-invalid="true"' in html
    assert f'value="{service.min_quantity - 1}"' in html  # what was typed stays
    assert not Order.objects.exists()


@pytest.mark.parametrize(("service_type", "field", "value", "message"), [
    ("Default", "link", "not a link", "Incorrect link"),
    ("Custom Comments", "comments", "", "Incorrect request"),
    ("Poll", "answer_number", "0", "Incorrect request"),
    ("Subscriptions", "posts", "0", "Incorrect request"),
    ("Subscriptions", "expiry", "2001-01-01", "Incorrect request"),
])
def test_each_refusal_is_shown_beside_the_field_it_concerns(alice_client, catalog, service_type,
                                                            field, value, message):
    service = make_service(catalog, service_type)

    response = submit(alice_client, service, form_values(service, **{field: value}))

    assert error_of(response.content.decode(), field) == message
    assert not Order.objects.exists()


def test_too_little_balance_is_said_before_submitting_and_refused_at_the_top(catalog):
    poor = make_customer("carol", balance="0.00001")
    client = Client()
    client.force_login(poor)
    service = make_service(catalog, "Default", fixed_rate=Decimal("50"))
    values = form_values(service)

    fragment = live_charge(client, service, values)
    response = submit(client, service, values)

    assert 'id="charge-short"' in fragment
    assert NOT_ENOUGH_FUNDS in fragment
    assert '<a href="/add-funds/">Add funds</a>' in fragment  # where to top up
    assert "0.00001" in fragment  # the balance it is measured against
    html = response.content.decode()
    assert re.search(rf'<p class="form-error" id="form-error" role="alert">{NOT_ENOUGH_FUNDS}',
                     html)
    assert not Order.objects.exists()


def test_the_live_charge_names_the_field_still_to_fill_in(alice_client, catalog):
    service = make_service(catalog, "Default")

    fragment = live_charge(alice_client, service, form_values(service, quantity=""))

    assert "Fill in “Quantity” to see the charge." in fragment
    assert 'id="charge-amount"' not in fragment


def test_an_unknown_or_disabled_service_is_refused_at_the_top(alice_client, catalog):
    service = make_service(catalog, "Default", enabled=False)

    token = "00000000-0000-4000-8000-000000000000"

    response = submit(alice_client, service, form_values(service), token=token)

    assert response.status_code == 400
    assert "Incorrect service ID" in response.content.decode()
    assert not Order.objects.exists()


# --- nothing twice ---------------------------------------------------------------------------


def test_the_same_form_sent_twice_places_one_order(alice_client, alice, catalog):
    service = make_service(catalog, "Default", one_order_per_link=False)
    values = form_values(service)
    _, token = open_form(alice_client, service)

    first = submit(alice_client, service, values, token)
    again = submit(alice_client, service, values, token)

    order = Order.objects.get(user=alice)  # exactly one
    assert f"Order #{order.pk} is placed." in first.content.decode()
    assert f"it placed order #{order.pk}, and nothing was placed again" in again.content.decode()
    assert f"Order #{order.pk} is placed." not in again.content.decode()
    assert LedgerEntry.objects.filter(user=alice, kind=LedgerEntry.Kind.CHARGE).count() == 1


def test_a_refused_form_can_be_corrected_and_sent_with_the_same_token(alice_client, alice,
                                                                       catalog):
    service = make_service(catalog, "Default", one_order_per_link=False)
    _, token = open_form(alice_client, service)

    submit(alice_client, service, form_values(service, quantity="0"), token)
    submit(alice_client, service, form_values(service), token)

    assert Order.objects.filter(user=alice).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_form_sent_from_two_threads_at_once_places_one_order(catalog):
    alice = make_customer("alice")
    service = make_service(catalog, "Default", one_order_per_link=False)
    browser = Client()
    browser.force_login(alice)
    _, token = open_form(browser, service)
    values = {"service": str(service.pk), "token": token, **form_values(service)}
    start = threading.Barrier(2)
    statuses: list[int] = []

    def send() -> None:
        client = Client()
        client.force_login(alice)
        start.wait()
        try:
            statuses.append(client.post(HOME, values).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200, 200]
    assert Order.objects.filter(user=alice).count() == 1
    assert LedgerEntry.objects.filter(user=alice, kind=LedgerEntry.Kind.CHARGE).count() == 1


# --- the search --------------------------------------------------------------------------------


def _many_services(catalog: Any, count: int) -> list[Service]:
    """`count` services in 5 categories, routed like make_service's, in a few queries."""
    template = make_service(catalog, "Default")
    route = Route.objects.get(service=template)
    categories = [Category.objects.create(name=f"Bulk {i}", position=i + 1) for i in range(5)]
    services = Service.objects.bulk_create([
        Service(category=categories[i % 5], name=f"Bulk service {i:05d} followers",
                type="Default", min_quantity=10, max_quantity=10000)
        for i in range(count)])
    Route.objects.bulk_create([Route(service=s, provider_service_id=route.provider_service_id)
                               for s in services])
    return services


def _search(client: Client, **params: Any) -> str:
    response = client.get(reverse("service_search"), params, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def _option_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'role="option" id="service-option-(\d+)"', html)]


def test_the_search_finds_by_name_and_by_id_among_5000_services_within_the_cap(
        alice_client, catalog, django_assert_max_num_queries):
    services = _many_services(catalog, 5000)
    wanted = services[4321]

    with django_assert_max_num_queries(6):
        by_name = _search(alice_client, q="service 04321")
    with django_assert_max_num_queries(6):
        by_id = _search(alice_client, q=str(wanted.pk))
    with django_assert_max_num_queries(6):
        broad = _search(alice_client, q="followers")

    assert _option_ids(by_name) == [wanted.pk]
    assert _option_ids(by_id)[0] == wanted.pk
    assert len(_option_ids(broad)) == 30
    assert "type more to narrow them down" in broad
    assert 'role="listbox"' in broad
    assert "<select" not in broad


def test_the_search_keeps_to_the_category_and_remembers_it(alice_client, catalog):
    services = _many_services(catalog, 50)
    category = services[3].category

    html = _search(alice_client, q="Bulk", category=category.pk)
    page = alice_client.get(HOME).content.decode()

    assert _option_ids(html)
    assert all(Service.objects.get(pk=pk).category == category for pk in _option_ids(html))
    assert f'<option value="{category.pk}" selected>' in page
    assert set(_option_ids(page)) <= {s.pk for s in services if s.category == category}


def test_choosing_all_categories_again_is_remembered_too(alice_client, catalog):
    services = _many_services(catalog, 10)
    category = services[0].category
    _search(alice_client, q="", category=category.pk)

    _search(alice_client, q="", category="")
    page = alice_client.get(HOME).content.decode()

    assert f'<option value="{category.pk}" selected>' not in page


def test_a_deep_link_to_a_service_not_for_sale_says_so(alice_client, catalog):
    service = make_service(catalog, "Default", enabled=False)

    html = alice_client.get(HOME, {"service": service.pk}).content.decode()

    assert "Incorrect service ID" in html
    assert 'id="order-form"' not in html


def test_a_deep_link_preselects_the_service(alice_client, catalog):
    service = make_service(catalog, "Poll", description="Votes for your poll answer.")

    html, _ = open_form(alice_client, service)

    assert f'<input type="hidden" name="service" value="{service.pk}">' in html
    assert "Votes for your poll answer." in html
    assert 'name="answer_number"' in html


# --- the customer's own price ------------------------------------------------------------------


def _rate_on_card(html: str) -> Decimal:
    [rate] = re.findall(r'<dd id="service-rate">([0-9.]+) [A-Z]{3}</dd>', html)
    return Decimal(rate)


def test_a_custom_rate_and_a_discount_are_on_the_card_and_in_the_charge(catalog):
    service = make_service(catalog, "Default", fixed_rate=Decimal("4.00000"),
                           one_order_per_link=False)
    dora = make_customer("dora", discount_percent=Decimal("25"))
    erin = make_customer("erin")
    CustomRate.objects.create(user=erin, service=service, rate=Decimal("3.20000"))
    quantity = service.min_quantity
    values = form_values(service, quantity=str(quantity))
    for customer, rate in ((dora, Decimal("3.00000")), (erin, Decimal("3.20000"))):
        client = Client()
        client.force_login(customer)
        html, token = open_form(client, service)
        assert _rate_on_card(html) == rate
        shown = charge_shown(live_charge(client, service, values))
        submit(client, service, values, token)
        order = Order.objects.get(user=customer)
        assert order.rate == rate
        assert order.charge == shown == (rate * quantity / 1000).quantize(Decimal("0.00001"))


# --- the page --------------------------------------------------------------------------------


def test_anonymous_visitors_get_the_landing_page(client):
    html = client.get(HOME).content.decode()

    assert 'class="hero"' in html
    assert "order-form" not in html


def test_the_aside_shows_the_balance_and_the_five_latest_orders(alice_client, alice, catalog):
    service = make_service(catalog, "Default", one_order_per_link=False)
    for _ in range(7):
        submit(alice_client, service, form_values(service))
    latest = list(Order.objects.filter(user=alice).order_by("-id").values_list("pk", flat=True))

    html = alice_client.get(HOME).content.decode()

    aside = html.split('<aside class="order-aside"')[1].split("</aside>")[0]
    shown = [int(pk) for pk in re.findall(r'href="/orders/(\d+)/"', aside)]
    assert shown == latest[:5]
    alice.refresh_from_db()
    assert f"{alice.balance} USD" in aside
    assert "Pending" in aside  # a status badge with its word


def test_the_average_time_comes_from_the_latest_completed_orders(alice_client, alice, catalog):
    from orders.views.history import AVERAGE_OF

    service = make_service(catalog, "Default", one_order_per_link=False)
    now = timezone.now()
    for _ in range(AVERAGE_OF):  # 1000 units each, so per 1000 = as long as they took
        submit(alice_client, service, form_values(service, quantity="1000"))
    orders = list(Order.objects.filter(user=alice).order_by("id"))
    for n, order in enumerate(orders):  # alternately 10 and 30 minutes: 20 on average
        Order.objects.filter(pk=order.pk).update(
            status=Order.Status.COMPLETED, submitted_at=now - timedelta(minutes=10 + 20 * (n % 2)),
            finished_at=now)
        html, _ = open_form(alice_client, service)
        if n < AVERAGE_OF - 1:  # the same rule as the services page: ten orders or nothing
            assert '<dd id="service-average">Not enough data</dd>' in html

    assert '<dd id="service-average">20 minutes per 1000</dd>' in html


@pytest.mark.parametrize("orders", [10, 200])
def test_the_page_costs_the_same_few_queries_however_many_orders_and_services(
        catalog, django_assert_max_num_queries, orders):
    services = _many_services(catalog, 5000)
    customer = make_customer("frank", balance="1000")
    rows = [Order(user=customer, service=services[i], link=f"https://x.com/{i}", quantity=10,
                  charged_units=10, rate=Decimal(1), charge=Decimal("0.01"), cost=Decimal(0))
            for i in range(orders)]
    Order.objects.bulk_create(rows)
    client = Client()
    client.force_login(customer)
    client.get(HOME, {"category": services[0].category_id})  # remembers it

    # session, user, categories, the category's first services, their routes, custom rates,
    # latest orders
    with django_assert_max_num_queries(7):
        assert client.get(HOME).status_code == 200
    # session, user, service, routes, categories, custom rate, average time, latest orders,
    # and the session's write (in a savepoint: 3 queries) when the service's category is not
    # the remembered one
    with django_assert_max_num_queries(11):
        assert client.get(HOME, {"service": services[9].pk}).status_code == 200


def test_the_page_runs_no_inline_script_or_style(alice_client, catalog):
    service = make_service(catalog, "Default", upstream={"dripfeed": True})

    html, _ = open_form(alice_client, service)

    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert not re.search(r"\s(on[a-z]+|style|hx-on[a-z:-]*)=", html)


def test_old_form_tokens_are_purged_by_the_daily_sweep(alice):
    from django.utils import timezone

    from orders.models import FormSubmission
    from orders.tasks import purge_form_submissions

    old = FormSubmission.objects.create(token=uuid.uuid4(), user=alice,
                                        created_at=timezone.now() - timedelta(days=8))
    fresh = FormSubmission.objects.create(token=uuid.uuid4(), user=alice)

    assert purge_form_submissions() == 1
    assert list(FormSubmission.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not FormSubmission.objects.filter(pk=old.pk).exists()
