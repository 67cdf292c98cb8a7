"""The admin's prices and reports in Chromium, at desktop and phone size.

An admin sets a fixed price on one service and adds a failover route to another; the
customer's services page shows the new prices; orders placed through orders.placing go out
(one by the failover route, the first route refusing it) and complete through the real poll
against the sandbox; the report then shows the profit this test computes from the ledger and
the orders. Every page is saved under var/screenshots/admin/ (prices-, reports-, dashboard-).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders import pricing
from orders.models import Service
from orders.placing import place_order
from panel.templatetags.panel_money import money
from providers.models import ProviderService
from providers.sync import check_balance
from tests.admin_support import (
    add_failover_route,
    customer_page,
    customer_sees_prices,
    report_shows_profit,
    send_and_complete,
    set_fixed_price,
)
from tests.conftest import log_in_browser, make_customer, make_service, screenshot
from tests.test_admin_access import make_admin

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_polls(settings):
    settings.STAFF_REQUIRE_MFA = False  # the desk's own browser test covers the second factor
    settings.POLL_FIRST_DELAY = 0
    settings.POLL_MAX_DELAY = 1


def _upstreams(provider, n):
    return list(ProviderService.objects.filter(provider=provider, type="Default", offered=True)
                .order_by("upstream_id")[:n])


def test_an_admin_prices_services_and_sees_the_profit(browser_page, live_server, catalog,
                                                      sandbox):
    from playwright.sync_api import expect

    page = browser_page
    # The failover route is cheaper than the first: dispatch never buys at a loss.
    first, spare, dear, fourth = _upstreams(catalog, 4)
    assert spare.cost_rate < dear.cost_rate
    fixed = make_service(catalog, "Default", upstream={"upstream_id": first.upstream_id})
    failover = make_service(catalog, "Default", upstream={"upstream_id": dear.upstream_id})
    thin = make_service(catalog, "Default", upstream={"upstream_id": fourth.upstream_id})
    alice = make_customer("alice", balance="500")
    admin = make_admin()
    check_balance(catalog)
    log_in_browser(page, live_server, admin)

    # A fixed price on one service, above its cost.
    cost = pricing.cost_rate(Service.objects.with_routes().get(pk=fixed.pk))
    price = (cost * 3).quantize(Decimal("0.01"))
    set_fixed_price(page, live_server, fixed, price)

    # Bulk edit: a markup under the minimum margin on a selection; it sells at the floor.
    page.goto(f"{live_server.url}/staff/admin/services/")
    page.get_by_label(f"Select service {thin.pk}").check()
    page.get_by_label("Action").select_option("markup")
    page.get_by_label("Markup %").fill("1")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("1 service changed.")).to_be_visible()
    thin_row = page.locator("tr", has=page.get_by_label(f"Select service {thin.pk}"))
    expect(thin_row.get_by_text("at the floor")).to_be_visible()
    page.goto(f"{live_server.url}/staff/admin/services/margin-guard/")
    expect(page.locator(".admin-guard tbody tr").first).to_contain_text(thin.name[:40])
    screenshot(page, "admin", "prices-margin-guard")

    # A failover route on another, each route showing its cost now.
    add_failover_route(page, live_server, failover, spare)

    # A customer's prices, and the categories and the margin guard.
    page.goto(f"{live_server.url}/staff/admin/services/?customer=alice")
    expect(page.get_by_text("The last column is what alice pays")).to_be_visible()
    screenshot(page, "admin", "prices-customer-preview")
    page.goto(f"{live_server.url}/staff/admin/categories/")
    expect(page.get_by_role("heading", name="Categories", exact=True)).to_be_visible()
    screenshot(page, "admin", "prices-categories")

    # The customer sees the fixed price on their services page.
    failover_price = pricing.customer_rate(Service.objects.with_routes().get(pk=failover.pk),
                                           alice)
    assert failover_price is not None
    shopper = customer_page(page, live_server, alice)
    customer_sees_prices(shopper, live_server, {fixed.pk: price, failover.pk: failover_price})
    shopper.context.close()

    # Orders go out — the failover one by its second route, the first refusing it — and
    # complete through the real poll.
    one = place_order(alice, fixed.pk, {"link": "https://x.com/p/fixed", "quantity": 1000})
    two = place_order(alice, failover.pk, {"link": "https://x.com/p/failover",
                                           "quantity": 1000})
    send_and_complete(sandbox, one, two, spare)
    assert Service.objects.get(pk=thin.pk).markup_percent == 1
    check_balance(catalog)

    # The profit, from the ledger and the orders' cost snapshots.
    profit = report_shows_profit(page, live_server, [one, two])

    page.goto(f"{live_server.url}/staff/admin/reports/reconciliation/")
    expect(page.get_by_role("heading", name=f"Reconciliation: {catalog.name}")).to_be_visible()
    screenshot(page, "admin", "reports-reconciliation")

    page.goto(f"{live_server.url}/staff/admin/")
    expect(page.locator('[data-figure="profit"]')).to_have_text(money(profit))
    expect(page.locator('[data-figure="in-flight"]')).to_have_text("0")
    screenshot(page, "admin", "dashboard")
