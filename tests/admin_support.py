"""Steps of the admin desk's browser tests, shared by the test of each half
(test_admin_browser.py, test_admin_prices_browser.py) and by the journey that chains them on
the same data (test_admin_journey_browser.py). Each step drives the pages as an admin would,
checks what they show, and saves every page it passes as
var/screenshots/admin/<prefix><name>-<size>.png."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from orders.dispatch import dispatch_one
from orders.models import Order, Service
from orders.polling import poll_orders
from orders.templatetags.orders_customer import rate
from panel.models import LedgerEntry
from panel.templatetags.panel_money import money
from providers.models import Provider, ProviderService
from tests.conftest import log_in_browser, screenshot

SECOND_KEY = "second-provider-key-0123456789"
SECOND_NAME = "Second sandbox"
IMPORTED_CATEGORY = "Imported at 40%"


@contextmanager
def celery_worker() -> Iterator[None]:
    """A Celery worker in this process, on the configured broker: the page's Sync now kick
    reaches it as in production, and its task runs against the test database and the
    sandbox over HTTP."""
    from celery.contrib.testing.worker import start_worker

    from panel.celery import app as celery_app

    with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=10):
        yield
    connections.close_all()


def screenshot_part(page: Any, locator: Any, name: str) -> None:
    """One part of a long page (the phone's catalog is 50 cards tall), beside the whole."""
    path = screenshot(page, "admin", name)
    locator.screenshot(path=str(path))


# --- connect, sync, import ---------------------------------------------------------------------

def connect_second_provider(page: Any, live_server: Any, sandbox: Any,
                            prefix: str = "") -> Provider:
    """Add the sandbox (under SECOND_KEY) as a provider, testing the connection before and
    after saving; the key is never shown again."""
    from playwright.sync_api import expect

    sandbox.add_key(SECOND_KEY)
    page.goto(f"{live_server.url}/staff/admin/providers/")
    expect(page.get_by_role("heading", name="Providers")).to_be_visible()
    screenshot(page, "admin", f"{prefix}providers")
    page.get_by_role("link", name="Add a provider").click()
    page.get_by_label("Name", exact=True).fill(SECOND_NAME)
    page.get_by_label("API URL").fill(sandbox.url)
    page.get_by_label("API key").fill(SECOND_KEY)
    page.get_by_label("Currency", exact=True).fill("USD")
    page.get_by_role("button", name="Test connection").click()  # before saving
    expect(page.locator("[data-connection=ok]")).to_be_visible()
    screenshot(page, "admin", f"{prefix}provider-add")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=SECOND_NAME)).to_be_visible()
    expect(page.get_by_text(SECOND_KEY)).to_have_count(0)

    page.get_by_role("button", name="Test connection").click()
    count = len(sandbox.services())
    expect(page.locator("[data-connection=ok]")).to_contain_text(f"{count} services")
    screenshot(page, "admin", f"{prefix}provider-connected")
    return Provider.objects.get(name=SECOND_NAME)


def sync_watching_progress(page: Any, sandbox: Any, prefix: str = "") -> None:
    """Sync now on the provider's page, with a Celery worker running: a slow catalog reply
    keeps the sync in its fetching phase long enough to see it."""
    from playwright.sync_api import expect

    count = len(sandbox.services())
    sandbox.set_fault("latency", action="services", delay=3, times=1)
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#sync-run[data-phase=fetching]")).to_be_visible()
    expect(page.locator(".admin-steps [aria-current=step]")).to_have_text(
        "Fetching the catalog")
    screenshot(page, "admin", f"{prefix}sync-running")
    expect(page.locator("#sync-run[data-phase=done]")).to_be_visible(timeout=20_000)
    expect(page.locator("#sync-run")).to_contain_text(f"{count} new, 0 changed, 0 retired")
    page.reload()  # the change log lists what the sync found
    expect(page.locator(".admin-changes")).to_contain_text("New")
    screenshot(page, "admin", f"{prefix}sync-done")


def import_ten_at_40_percent(page: Any, prefix: str = "") -> list[Service]:
    """From the provider's page: ten Default services into a new category at 40% markup,
    after a preview that writes nothing. Returns them, by id."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Catalog import").click()
    expect(page.get_by_role("heading", name=f"Catalog of {SECOND_NAME}")).to_be_visible()
    page.get_by_label("Type").select_option("Default")
    page.get_by_role("button", name="Filter").click()
    screenshot(page, "admin", f"{prefix}catalog")
    boxes = page.locator("input[name=ids]")
    assert boxes.count() >= 10
    for i in range(10):
        boxes.nth(i).check()
    page.get_by_label("Into a new category").check()
    page.get_by_label("New category's name").fill(IMPORTED_CATEGORY)
    page.get_by_label("Markup %").fill("40")
    screenshot_part(page, page.locator("#import-form > .card"), f"{prefix}catalog-import-options")
    screenshot_part(page, page.locator(".admin-catalog-table tbody tr").first,
                    f"{prefix}catalog-row")
    before = set(Service.objects.values_list("pk", flat=True))
    page.get_by_role("button", name="Preview prices").click()

    expect(page.get_by_role("heading", name="Import 10 services")).to_be_visible()
    assert page.locator("[data-preview-row]").count() == 10
    assert set(Service.objects.values_list("pk", flat=True)) == before  # a preview writes nothing
    screenshot(page, "admin", f"{prefix}import-preview")
    page.get_by_role("button", name="Import 10 services").click()
    expect(page.get_by_text(f"10 services imported from {SECOND_NAME}.")).to_be_visible()
    screenshot(page, "admin", f"{prefix}imported")

    services = list(Service.objects.filter(category__name=IMPORTED_CATEGORY).order_by("pk"))
    assert len(services) == 10 and all(s.markup_percent == Decimal(40) for s in services)
    assert all(s.routes.get().provider_service.provider.name == SECOND_NAME for s in services)
    return services


# --- prices ------------------------------------------------------------------------------------

def set_fixed_price(page: Any, live_server: Any, service: Service, price: Decimal,
                    prefix: str = "") -> None:
    """From the services editor (cost, list price and margin side by side), a fixed price
    on one service."""
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/staff/admin/services/")
    expect(page.get_by_role("heading", name="Services and prices")).to_be_visible()
    screenshot(page, "admin", f"{prefix}prices-services")
    page.get_by_role("link", name=service.name[:60]).first.click()
    page.get_by_label("Fixed rate").fill(str(price))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Service #{service.pk} saved.")).to_be_visible()
    screenshot(page, "admin", f"{prefix}prices-service-fixed")
    assert Service.objects.get(pk=service.pk).fixed_rate == price


def add_failover_route(page: Any, live_server: Any, service: Service,
                       upstream: ProviderService, prefix: str = "") -> None:
    """A second route on the service's page, shown with its cost now."""
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/staff/admin/services/{service.pk}/")
    page.get_by_label("Provider").select_option(label=upstream.provider.name)
    page.get_by_label("Upstream service id").fill(str(upstream.upstream_id))
    page.get_by_role("button", name="Add a failover route").click()
    expect(page.get_by_text("Route added as failover number 2.")).to_be_visible()
    routes = page.locator(".routes-table tbody tr")
    expect(routes).to_have_count(2)
    expect(routes.nth(1)).to_contain_text(upstream.provider.name)
    cost = upstream.provider.to_panel_currency(upstream.cost_rate)
    expect(routes.nth(1)).to_contain_text(f"{cost:.5f}")
    screenshot(page, "admin", f"{prefix}prices-service-routes")


def customer_page(page: Any, live_server: Any, customer: Any) -> Any:
    """A page of the customer's own, beside the admin's, at the same size."""
    context = page.context.browser.new_context(viewport=page.viewport_size, locale="en-US",
                                               timezone_id="UTC")
    shopper = context.new_page()
    shopper.set_default_timeout(15_000)
    log_in_browser(shopper, live_server, customer)
    return shopper


def customer_sees_prices(shopper: Any, live_server: Any, prices: dict[int, Decimal],
                         prefix: str = "") -> None:
    """The customer's services page shows each service (by id) at its expected price per
    1000."""
    from playwright.sync_api import expect

    shopper.goto(f"{live_server.url}/services/")
    for pk, price in prices.items():
        row = shopper.locator("tr", has=shopper.locator("td.key", has_text=re.compile(
            rf"^{pk}$")))
        expect(row.locator("td.money")).to_have_text(f"{rate(price)} {settings.PANEL_CURRENCY}")
    screenshot(shopper, "admin", f"{prefix}prices-customer-services")


# --- orders and the profit ---------------------------------------------------------------------

def send_and_complete(sandbox: Any, plain: Order, failover: Order, spare: ProviderService,
                      refusing_key: str | None = None) -> None:
    """Send both orders; the failover one's first route refuses it (a definite "Incorrect
    service ID" from the sandbox, under `refusing_key` if given), so it goes by `spare`.
    Then the real poll completes both."""
    assert dispatch_one(plain.pk)
    sandbox.set_fault("error", key=refusing_key, action="add", times=1,
                      message="Incorrect service ID")
    assert dispatch_one(failover.pk)
    failover.refresh_from_db()
    assert failover.route is not None and failover.route.provider_service == spare
    Order.objects.filter(pk__in=[plain.pk, failover.pk]).update(next_check_at=timezone.now())
    poll_orders()
    assert set(Order.objects.filter(pk__in=[plain.pk, failover.pk])
               .values_list("status", flat=True)) == {"completed"}


def profit_of(orders: Iterable[Order]) -> tuple[Decimal, Decimal]:
    """Revenue and profit of these orders, from the ledger (charges less refunds) and the
    orders' cost snapshots: the report's figures computed another way."""
    ids = [o.pk for o in orders]
    entries = LedgerEntry.objects.filter(order_id__in=ids, kind__in=("charge", "refund"))
    revenue = -sum((e.amount for e in entries), Decimal(0))
    cost = sum((o.cost for o in Order.objects.filter(pk__in=ids)), Decimal(0))
    return revenue, revenue - cost


def report_shows_profit(page: Any, live_server: Any, orders: list[Order],
                        prefix: str = "") -> Decimal:
    """The report's revenue and profit over the last 30 days are those of `orders`."""
    from playwright.sync_api import expect

    revenue, profit = profit_of(orders)
    assert revenue == sum((o.charge for o in Order.objects.filter(
        pk__in=[o.pk for o in orders])), Decimal(0))  # completed in full: no refund
    page.goto(f"{live_server.url}/staff/admin/reports/")
    expect(page.locator('[data-figure="profit"]')).to_have_text(money(profit))
    expect(page.locator('[data-figure="revenue"]')).to_have_text(money(revenue))
    expect(page.locator("svg.chart-svg rect.chart-bar")).to_have_count(30)
    screenshot(page, "admin", f"{prefix}reports-profit")
    return profit
