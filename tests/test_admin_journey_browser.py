"""The admin desk's whole journey in Chromium, at desktop and phone size, on one set of data.

An admin connects the sandbox as a second provider (beside a first one, "Main", already
synced), tests the connection, syncs it watching the progress, and imports ten of its
services into a new category at 40% markup after the preview. Then, on two of those ten: a
fixed price on one, and on another a failover route to the same upstream service through
Main. The customer's services page shows the fixed price and the 40% markup on the other
nine; the customer orders both through the new order page; the order on the failover service
goes out by Main when the second provider refuses it, and both complete through the real poll
against the sandbox. The report's profit is the one this test computes from the ledger rows
and the orders' cost snapshots. Every page is saved as var/screenshots/admin/journey-*.png.

The details each half tests beyond this (the margin guard, bulk edits, mapped categories,
reconciliation) stay in test_admin_browser.py and test_admin_prices_browser.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orders.models import Order, Service
from orders.placing import quote
from panel.money import quantize_rate
from panel.templatetags.panel_money import money
from providers.models import ProviderService
from providers.sync import sync_catalog
from tests.admin_support import (
    SECOND_KEY,
    add_failover_route,
    celery_worker,
    connect_second_provider,
    customer_page,
    customer_sees_prices,
    import_ten_at_40_percent,
    profit_of,
    report_shows_profit,
    send_and_complete,
    set_fixed_price,
    sync_watching_progress,
)
from tests.conftest import log_in_browser, make_customer, make_provider, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
QUANTITY = 1000
PREFIX = "journey-"


@pytest.fixture(autouse=True)
def journey_settings(settings):
    settings.STAFF_REQUIRE_MFA = False  # the desk's own browser test covers the second factor
    settings.POLL_FIRST_DELAY = 0
    settings.POLL_MAX_DELAY = 1


def _cost(service: Service) -> Decimal:
    """What the service's only route (as imported) costs per 1000, from the synced upstream
    row."""
    upstream = service.routes.select_related("provider_service__provider").get().provider_service
    return upstream.provider.to_panel_currency(upstream.cost_rate)


def _order_through_the_page(shopper: Any, live_server: Any, customer: Any, service: Service,
                            name: str) -> Order:
    """The customer's New order page, for `service`: the live charge, then Place order."""
    link = f"https://x.com/p/{name}"
    from playwright.sync_api import expect

    shopper.goto(f"{live_server.url}/?service={service.pk}")
    expect(shopper.locator("#service-card")).to_contain_text(service.name)
    shopper.get_by_label("Link").fill(link)
    shopper.get_by_label("Quantity").fill(str(QUANTITY))
    charge = quote(customer, service.pk, {"link": link, "quantity": str(QUANTITY)}).charge
    expect(shopper.locator("#charge-amount")).to_have_text(f"{charge} USD")
    screenshot(shopper, "admin", f"{PREFIX}new-order-{name}")
    shopper.get_by_role("button", name="Place order").click()
    placed = shopper.locator("#order-placed")
    expect(placed).to_contain_text("is placed")
    order = Order.objects.get(user=customer, service=service)
    expect(placed).to_contain_text(f"Order #{order.pk} is placed.")
    assert order.charge == charge
    screenshot(shopper, "admin", f"{PREFIX}new-order-placed-{name}")
    return order


def test_an_admin_imports_a_second_provider_prices_it_and_sees_the_profit(
        browser_page, live_server, sandbox):
    from playwright.sync_api import expect

    page = browser_page
    main = make_provider(sandbox, name="Main")
    assert sync_catalog(main).ok
    alice = make_customer("alice", balance="500")
    log_in_browser(page, live_server, make_customer("root", balance="0", is_superuser=True,
                                                    is_staff=True))

    # Connect, test, sync (a Celery worker takes the page's kick), import ten at 40%.
    second = connect_second_provider(page, live_server, sandbox, PREFIX)
    with celery_worker():
        sync_watching_progress(page, sandbox, PREFIX)
    imported = import_ten_at_40_percent(page, PREFIX)
    fits = [s for s in imported if s.min_quantity <= QUANTITY <= s.max_quantity]
    fixed, failover = fits[0], fits[1]
    costs = {s.pk: _cost(s) for s in imported}

    # A fixed price on one of the ten, three times its cost.
    price = (costs[fixed.pk] * 3).quantize(Decimal("0.01"))
    set_fixed_price(page, live_server, fixed, price, PREFIX)

    # On another, a failover route: the same upstream service at Main, at the same cost.
    first_route = failover.routes.select_related("provider_service").get()
    spare = ProviderService.objects.get(provider=main,
                                        upstream_id=first_route.provider_service.upstream_id)
    assert first_route.provider_service.provider == second
    add_failover_route(page, live_server, failover, spare, PREFIX)

    # The customer's prices: the fixed one, and 40% over cost (rounded up) for the nine.
    prices = {s.pk: quantize_rate(costs[s.pk] * Decimal("1.4")) for s in imported}
    prices[fixed.pk] = price
    shopper = customer_page(page, live_server, alice)
    customer_sees_prices(shopper, live_server, prices, PREFIX)
    expect(shopper.locator("tr.group-row", has_text="Imported at 40%")).to_have_count(1)

    # The customer orders both; the second provider refuses the failover one once, so it
    # goes out by Main; the real poll completes both, as the customer's orders page shows.
    one = _order_through_the_page(shopper, live_server, alice, fixed, "fixed")
    two = _order_through_the_page(shopper, live_server, alice, failover, "failover")
    assert (one.charge, two.charge) == (price, prices[failover.pk])  # 1000 at the rate per 1000
    send_and_complete(sandbox, one, two, spare, refusing_key=SECOND_KEY)
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.route is not None and one.route.provider == second
    assert two.sent_to == main
    assert [(a["order"], a["error"]) for a in sandbox.adds(SECOND_KEY)] == [
        (one.upstream_id, None), (None, "Incorrect service ID")]
    assert [a["order"] for a in sandbox.adds(sandbox.key)] == [two.upstream_id]
    shopper.goto(f"{live_server.url}/orders/")
    for order in (one, two):
        row = shopper.locator("tr", has=shopper.get_by_role("link", name=str(order.pk),
                                                           exact=True))
        expect(row.locator(".badge")).to_have_text("Completed")
    screenshot(shopper, "admin", f"{PREFIX}customer-orders")
    shopper.context.close()

    # The profit: the charges less each order's cost snapshot, the upstream's cost of a
    # thousand (the failover route costs what the first does: the same upstream service).
    assert spare.cost_rate == first_route.provider_service.cost_rate
    expected = one.charge - costs[fixed.pk] + two.charge - costs[failover.pk]
    assert profit_of([one, two])[1] == expected
    profit = report_shows_profit(page, live_server, [one, two], PREFIX)
    assert profit == expected

    page.goto(f"{live_server.url}/staff/admin/")
    expect(page.locator('[data-figure="profit"]')).to_have_text(money(profit))
    expect(page.locator('[data-figure="in-flight"]')).to_have_text("0")
    screenshot(page, "admin", f"{PREFIX}dashboard")
