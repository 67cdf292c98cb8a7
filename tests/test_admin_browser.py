"""The admin desk in Chromium at desktop and phone size: an admin connects the sandbox as a
second provider, tests the connection, syncs it watching the progress (a slow catalog
reply keeps the sync in its fetching phase long enough to see), and imports ten of its
services into a new category at 40% markup after the preview. Screenshots of every page
under var/screenshots/admin/."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Service
from tests.admin_support import (
    celery_worker,
    connect_second_provider,
    import_ten_at_40_percent,
    sync_watching_progress,
)
from tests.conftest import log_in_browser, make_customer, make_provider, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def admin_settings(settings):
    settings.STAFF_REQUIRE_MFA = False


@pytest.fixture
def worker():
    with celery_worker():
        yield


def test_an_admin_connects_syncs_and_imports_a_second_provider(browser_page, live_server,
                                                                sandbox, worker):
    from playwright.sync_api import expect

    page = browser_page
    make_provider(sandbox, name="Main")
    admin = make_customer("root", balance="0", is_superuser=True, is_staff=True)
    log_in_browser(page, live_server, admin)

    connect_second_provider(page, live_server, sandbox)
    sync_watching_progress(page, sandbox)
    assert not Service.objects.exists()
    import_ten_at_40_percent(page)

    page.get_by_role("link", name="Providers", exact=True).click()
    expect(page.locator(".admin-providers")).to_contain_text("Second sandbox")
    expect(page.locator(".admin-providers")).to_contain_text("10000 USD")  # tested balance
    screenshot(page, "admin", "providers-after")


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
