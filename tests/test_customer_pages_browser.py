"""The customer's lists in Chromium, at desktop and phone size: a customer with orders in
several states searches the services, goes through the orders' tabs, search and pages, asks
for a refill and sees it on the refills page, cancels an order, reads the transactions and
downloads them as CSV. Every page is saved under var/screenshots/customer/."""

import csv
import re
from pathlib import Path

import pytest

from orders.models import Order, Refill
from orders.placing import place_order
from panel.models import LedgerEntry
from providers.sync import sync_catalog
from tests.conftest import log_in_browser, make_provider, make_service, screenshot
from tests.test_customer_pages import (
    orders_in_every_state,
    panel_dripfeed,
    subscription_order,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream(sandbox):
    provider = make_provider(sandbox, name="Hiddenprov Wholesale")
    assert sync_catalog(provider).ok
    return provider


def _shoot(page, name: str) -> None:
    screenshot(page, "customer", name)


def test_a_customer_follows_orders_refills_cancels_and_money(
        browser_page, live_server, upstream, sandbox, alice):
    from playwright.sync_api import expect

    page = browser_page
    states = orders_in_every_state(upstream, sandbox, alice)
    searchable = make_service(upstream, "Default", name="Zebra followers [Demo]")
    for n in range(22):  # enough for a second page of orders
        place_order(alice, searchable.pk, {"link": f"https://instagram.com/p/many{n}",
                                           "quantity": searchable.min_quantity})
    drip = panel_dripfeed(upstream, alice)
    subscription_order(upstream, alice)
    log_in_browser(page, live_server, alice)

    # Services: search by name, the list updates in place.
    page.goto(f"{live_server.url}/services/")
    expect(page.get_by_role("heading", name="Services")).to_be_visible()
    _shoot(page, "services")
    page.get_by_label("Search by name or ID").fill("zebra")
    expect(page.locator("#services-list")).to_contain_text("Zebra followers [Demo]")
    expect(page.locator("#services-list tbody tr:not(.group-row)")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=zebra"))
    _shoot(page, "services-search")

    # Orders: tabs, search, page 2.
    page.goto(f"{live_server.url}/orders/")
    expect(page.get_by_text("1 to 25 of 30")).to_be_visible()
    _shoot(page, "orders")
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("26 to 30 of 30")).to_be_visible()
    page.get_by_role("link", name=re.compile(r"^Completed \d")).click()
    expect(page.get_by_text("1 to 1 of 1")).to_be_visible()
    expect(page.locator("#orders-list .status-completed").first).to_have_text("Completed")
    page.get_by_label("Search by order ID or link").fill("many7")
    expect(page.get_by_text("Nothing here yet.")).to_be_visible()  # not a completed one
    page.get_by_role("link", name=re.compile(r"^All \d")).click()
    expect(page.get_by_text("1 to 1 of 1")).to_be_visible()
    expect(page.locator("#orders-list")).to_contain_text("https://instagram.com/p/many7")

    # A completed, refillable order: ask for a refill, then find it on the refills page.
    completed = states["Completed"]
    page.goto(f"{live_server.url}/orders/{completed.pk}/")
    page.get_by_role("button", name="Refill").click()
    refill = Refill.objects.get(order=completed)
    expect(page.get_by_text(f"Refill #{refill.pk} requested.")).to_be_visible()
    expect(page.get_by_role("button", name="Refill")).to_have_count(0)
    _shoot(page, "order")
    page.goto(f"{live_server.url}/refills/")
    row = page.locator("tbody tr").filter(has_text=str(completed.pk))
    expect(row.locator(".badge")).to_have_text("Pending")
    _shoot(page, "refills")

    # A cancellable order in progress: cancel it, the page says what happens next.
    running = states["In progress"]
    page.goto(f"{live_server.url}/orders/{running.pk}/")
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_text("Cancel requested: the refund follows once it is canceled.")
           ).to_be_visible()
    assert Order.objects.get(pk=running.pk).cancel_requested_at is not None
    _shoot(page, "order-canceling")

    # Drip-feed, its run's page, subscriptions, updates.
    page.goto(f"{live_server.url}/drip-feed/")
    expect(page.get_by_text("0 of 3")).to_be_visible()
    _shoot(page, "dripfeed")
    page.get_by_role("link", name=re.compile(r"^Run 1")).click()
    expect(page.get_by_text("Run 1 of 3 of a drip-feed order.")).to_be_visible()
    assert page.url.endswith(f"/orders/{drip.runs_set.get(run_number=1).pk}/")
    _shoot(page, "run")
    page.goto(f"{live_server.url}/subscriptions/")
    expect(page.get_by_text("someone0")).to_be_visible()
    _shoot(page, "subscriptions")
    page.goto(f"{live_server.url}/updates/")
    expect(page.get_by_text("New service").first).to_be_visible()
    _shoot(page, "updates")

    # Transactions and their CSV.
    page.goto(f"{live_server.url}/transactions/")
    expect(page.get_by_role("heading", name="Transactions")).to_be_visible()
    _shoot(page, "transactions")
    page.get_by_role("link", name="Refund", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(
        LedgerEntry.objects.filter(user=alice, kind="refund").count())
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.reader(Path(download.value.path()).read_text().splitlines()))
    refunds = LedgerEntry.objects.filter(user=alice, kind="refund")
    assert sorted(r[2] for r in rows[1:]) == sorted(str(e.amount) for e in refunds)
    assert {r[1] for r in rows[1:]} == {"refund"}


def test_on_a_phone_the_id_and_status_of_each_order_stay_visible(
        browser_page, live_server, upstream, sandbox, alice):
    from playwright.sync_api import expect

    page = browser_page
    orders_in_every_state(upstream, sandbox, alice)
    log_in_browser(page, live_server, alice)

    page.goto(f"{live_server.url}/orders/")

    first = page.locator("#orders-list tbody tr").first
    expect(first.locator("td.key a")).to_be_visible()
    expect(first.locator(".badge")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1  # nothing sticks out sideways
