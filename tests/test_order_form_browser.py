"""The New order and Mass order pages in Chromium, at desktop and phone size: search a
service by name, pick it by keyboard, see the live charge, place it; a mass order."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.utils.text import slugify

from orders.models import Order
from orders.params import SERVICE_TYPES, TYPE_SPECS
from orders.placing import quote
from tests.conftest import log_in_browser, make_service, open_page, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_customer_finds_a_service_sees_the_charge_and_places_it(browser_page, live_server,
                                                                     catalog, alice):
    from playwright.sync_api import expect

    page = browser_page
    wanted = make_service(catalog, "Default", name="Instagram Followers Premium",
                          fixed_rate=Decimal("1.23457"), refill=True, cancel=True,
                          description="Real-looking followers, start in 1 hour.")
    make_service(catalog, "Default", name="Instagram Likes Fast")
    log_in_browser(page, live_server, alice)

    page.goto(f"{live_server.url}/")
    search = page.get_by_role("combobox", name="Service")
    search.fill("followers prem")
    option = page.get_by_role("option", name=re.compile("Instagram Followers Premium"))
    expect(option).to_be_visible()
    screenshot(page, "customer", "new-order-search")
    search.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    search.press("Enter")

    expect(page).to_have_url(re.compile(rf"\?service={wanted.pk}$"))
    expect(page.locator("#service-card")).to_contain_text("Real-looking followers")
    page.get_by_label("Link").fill("https://instagram.com/someone")
    page.get_by_label("Quantity").fill("2000")
    expected = quote(alice, wanted.pk, {"link": "https://instagram.com/someone",
                                        "quantity": "2000"}).charge
    expect(page.locator("#charge-amount")).to_have_text(f"{expected} USD")
    screenshot(page, "customer", "new-order")
    page.get_by_role("button", name="Place order").click()

    placed = page.locator("#order-placed")
    expect(placed).to_contain_text("is placed")
    order = Order.objects.get(user=alice)
    expect(placed).to_contain_text(f"Order #{order.pk} is placed.")
    assert order.charge == expected
    expect(page.locator(".latest-orders")).to_contain_text(f"#{order.pk}")
    screenshot(page, "customer", "new-order-placed")


def test_a_customer_places_a_mass_order_and_sees_each_lines_result(browser_page, live_server,
                                                                    catalog, alice):
    from playwright.sync_api import expect

    page = browser_page
    service = make_service(catalog, "Default")
    low = service.min_quantity
    log_in_browser(page, live_server, alice)
    page.goto(f"{live_server.url}/mass-order/")
    page.get_by_label("Orders, one per line").fill("\n".join([
        f"{service.pk} | https://instagram.com/p/one | {low}",
        f"{service.pk} | https://instagram.com/p/two | {low - 1}",
        f"{service.pk} | https://instagram.com/p/three | {low}",
    ]))
    page.get_by_role("button", name="Place orders").click()

    results = page.locator("#mass-results")
    expect(results).to_contain_text("2 orders placed, 1 line refused.")
    expect(results).to_contain_text(f"Quantity less than minimal {low}")
    assert Order.objects.filter(user=alice).count() == 2
    screenshot(page, "customer", "mass-order")


def test_every_type_has_its_form(chromium, live_server, catalog, alice):
    from django.db import connections
    from playwright.sync_api import expect

    page = open_page(chromium, "desktop")  # one screenshot per type, at desktop size only
    try:
        log_in_browser(page, live_server, alice)
        for service_type in SERVICE_TYPES:
            # Default with drip-feed, to show its runs and interval too
            upstream = {"dripfeed": True} if service_type == "Default" else {}
            service = make_service(catalog, service_type, upstream=upstream)
            page.goto(f"{live_server.url}/?service={service.pk}")
            if service.dripfeed:
                page.get_by_text("Drip-feed", exact=True).last.click()
            fields = [f for f in TYPE_SPECS[service_type].fields
                      if service.dripfeed or not f.dripfeed]
            for type_field in fields:
                expect(page.locator(f"#id_{type_field.name}")).to_be_attached()
            expect(page.locator("#charge")).to_contain_text("Fill in")
            screenshot(page, "customer", f"new-order-{slugify(service_type)}")
    finally:
        page.context.close()
        connections.close_all()
