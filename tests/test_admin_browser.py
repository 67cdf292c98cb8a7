"""The admin desk in Chromium at desktop and phone size: an admin connects the sandbox as a
second provider, tests the connection, syncs it watching the progress (a slow catalog
reply keeps the sync in its fetching phase long enough to see), and imports ten of its
services into a new category at 40% markup after the preview. Screenshots of every page
under var/screenshots/admin/."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connections

from orders.models import Service
from tests.conftest import log_in_browser, make_customer, make_provider, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
SECOND_KEY = "second-provider-key-0123456789"


def screenshot_part(page, locator, name: str) -> None:
    """One part of a long page (the phone's catalog is 50 cards tall), beside the whole."""
    path = screenshot(page, "admin", name)
    locator.screenshot(path=str(path))


@pytest.fixture(autouse=True)
def admin_settings(settings):
    settings.STAFF_REQUIRE_MFA = False


@pytest.fixture
def worker():
    """A Celery worker in this process, on the configured broker: the page's Sync now kick
    reaches it as in production, and its task runs against the test database and the
    sandbox over HTTP."""
    from celery.contrib.testing.worker import start_worker

    from panel.celery import app as celery_app

    with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=10):
        yield
    connections.close_all()


def test_an_admin_connects_syncs_and_imports_a_second_provider(browser_page, live_server,
                                                                sandbox, worker):
    from playwright.sync_api import expect

    page = browser_page
    make_provider(sandbox, name="Main")
    sandbox.add_key(SECOND_KEY)
    admin = make_customer("root", balance="0", is_superuser=True, is_staff=True)
    log_in_browser(page, live_server, admin)

    page.goto(f"{live_server.url}/staff/admin/providers/")
    expect(page.get_by_role("heading", name="Providers")).to_be_visible()
    screenshot(page, "admin", "providers")
    page.get_by_role("link", name="Add a provider").click()
    page.get_by_label("Name", exact=True).fill("Second sandbox")
    page.get_by_label("API URL").fill(sandbox.url)
    page.get_by_label("API key").fill(SECOND_KEY)
    page.get_by_label("Currency", exact=True).fill("USD")
    page.get_by_role("button", name="Test connection").click()  # before saving
    expect(page.locator("[data-connection=ok]")).to_be_visible()
    screenshot(page, "admin", "provider-add")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Second sandbox")).to_be_visible()
    expect(page.get_by_text(SECOND_KEY)).to_have_count(0)

    page.get_by_role("button", name="Test connection").click()
    count = len(sandbox.services())
    expect(page.locator("[data-connection=ok]")).to_contain_text(f"{count} services")
    screenshot(page, "admin", "provider-connected")

    sandbox.set_fault("latency", action="services", delay=3, times=1)
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#sync-run[data-phase=fetching]")).to_be_visible()
    expect(page.locator(".admin-steps [aria-current=step]")).to_have_text(
        "Fetching the catalog")
    screenshot(page, "admin", "sync-running")
    expect(page.locator("#sync-run[data-phase=done]")).to_be_visible(timeout=20_000)
    expect(page.locator("#sync-run")).to_contain_text(f"{count} new, 0 changed, 0 retired")
    page.reload()  # the change log lists what the sync found
    expect(page.locator(".admin-changes")).to_contain_text("New")
    screenshot(page, "admin", "sync-done")

    page.get_by_role("link", name="Catalog import").click()
    expect(page.get_by_role("heading", name="Catalog of Second sandbox")).to_be_visible()
    page.get_by_label("Type").select_option("Default")
    page.get_by_role("button", name="Filter").click()
    screenshot(page, "admin", "catalog")
    boxes = page.locator("input[name=ids]")
    assert boxes.count() >= 10
    for i in range(10):
        boxes.nth(i).check()
    page.get_by_label("Into a new category").check()
    page.get_by_label("New category's name").fill("Imported at 40%")
    page.get_by_label("Markup %").fill("40")
    screenshot_part(page, page.locator("#import-form > .card"), "catalog-import-options")
    screenshot_part(page, page.locator(".admin-catalog-table tbody tr").first, "catalog-row")
    page.get_by_role("button", name="Preview prices").click()

    expect(page.get_by_role("heading", name="Import 10 services")).to_be_visible()
    assert page.locator("[data-preview-row]").count() == 10
    assert not Service.objects.exists()  # nothing written by the preview
    screenshot(page, "admin", "import-preview")
    page.get_by_role("button", name="Import 10 services").click()
    expect(page.get_by_text("10 services imported from Second sandbox.")).to_be_visible()
    screenshot(page, "admin", "imported")

    page.get_by_role("link", name="Providers", exact=True).click()
    expect(page.locator(".admin-providers")).to_contain_text("Second sandbox")
    expect(page.locator(".admin-providers")).to_contain_text("10000 USD")  # tested balance
    screenshot(page, "admin", "providers-after")

    services = list(Service.objects.filter(category__name="Imported at 40%"))
    assert len(services) == 10 and all(s.markup_percent == Decimal(40) for s in services)
    assert all(s.routes.get().provider_service.provider.name == "Second sandbox"
               for s in services)


def test_an_admin_maps_upstream_categories_into_ours(browser_page, live_server, sandbox):
    from playwright.sync_api import expect

    from orders.models import Category
    from providers.sync import sync_catalog

    page = browser_page
    provider = make_provider(sandbox, name="Main")
    sync_catalog(provider)
    Category.objects.create(name="Our followers", markup_percent=Decimal(50))
    log_in_browser(page, live_server, make_customer("root", balance="0", is_superuser=True,
                                                    is_staff=True))
    page.goto(f"{live_server.url}/staff/admin/providers/{provider.pk}/catalog/?q=Followers")
    boxes = page.locator("input[name=ids]")
    for i in range(3):
        boxes.nth(i).check()
    page.get_by_label("Each into our category of its upstream category's name").check()
    page.get_by_role("button", name="Preview prices").click()
    expect(page.get_by_role("heading", name="Upstream categories into ours")).to_be_visible()
    page.locator(".admin-mapping input[type=text]").first.fill("Our followers")
    page.get_by_role("button", name="Preview again").click()
    expect(page.locator("[data-preview-row]").first).to_contain_text("Our followers")
    screenshot(page, "admin", "import-preview-mapped")
    page.get_by_role("button", name="Import 3 services").click()
    expect(page.get_by_text("3 services imported from Main.")).to_be_visible()
    assert Service.objects.filter(category__name="Our followers").exists()
