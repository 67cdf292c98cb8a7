"""The shared layout in Chromium: every entry in one row on a desktop; on a phone a menu
button that opens by keyboard and by tap (and without JavaScript), Escape closing it; the
skip link; the API page in the layout."""

import re
from pathlib import Path

import pytest

from tests.conftest import VIEWPORTS, log_in_browser, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

ENTRIES = ["New order", "API", re.compile("^Account"), "Log out"]


def _entry(page, name):
    links = page.locator(".nav-links")
    if name == "Log out":
        return links.get_by_role("button", name=name)
    return links.get_by_role("link", name=name)


def _screen(page, name):
    """What the screen shows (not the whole page): var/screenshots/layout/<name>-<size>.png."""
    path = screenshot(page, "layout", name)
    page.screenshot(path=str(path))


@pytest.fixture
def phone(chromium, live_server, request):
    """A phone-sized page with a touch screen, so that taps are real touch events."""
    from django.db import connections

    js = getattr(request, "param", True)
    context = chromium.new_context(viewport=VIEWPORTS["phone"], has_touch=True, is_mobile=True,
                                   locale="en-US", timezone_id="UTC", java_script_enabled=js)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
    connections.close_all()


def test_every_entry_shows_on_a_desktop_and_hides_behind_the_menu_on_a_phone(
        browser_page, live_server, alice):
    from playwright.sync_api import expect

    page = browser_page
    log_in_browser(page, live_server, alice)
    page.goto(live_server.url + "/api/")
    expect(page.locator(".topbar-balance")).to_have_text(re.compile(r"100\.00 USD"))
    toggle = page.locator("summary.nav-toggle")
    if page.viewport_size["width"] > VIEWPORTS["phone"]["width"]:
        expect(toggle).to_be_hidden()
        for name in ENTRIES:
            expect(_entry(page, name)).to_be_visible()
        expect(_entry(page, "API")).to_have_attribute("aria-current", "page")
    else:
        expect(toggle).to_be_visible()
        for name in ENTRIES:
            expect(_entry(page, name)).to_be_hidden()
        toggle.click()
        for name in ENTRIES:
            expect(_entry(page, name)).to_be_visible()
        _screen(page, "menu-open")
        toggle.click()
    expect(page.get_by_role("heading", name="API", exact=True)).to_be_visible()
    # Nothing is wider than the screen: the page never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    screenshot(page, "layout", "api")
    _screen(page, "api-top")


def test_the_phone_menu_opens_and_closes_by_keyboard(phone, live_server, alice):
    from playwright.sync_api import expect

    log_in_browser(phone, live_server, alice)
    phone.goto(live_server.url + "/api/")
    toggle = phone.locator("summary.nav-toggle")
    phone.keyboard.press("Tab")
    expect(phone.get_by_role("link", name="Skip to content")).to_be_focused()
    phone.keyboard.press("Tab")
    phone.keyboard.press("Tab")
    # The balance in the top bar is a link to Add funds, between the brand and the menu.
    expect(phone.locator(".topbar-balance-link")).to_be_focused()
    phone.keyboard.press("Tab")
    expect(toggle).to_be_focused()

    phone.keyboard.press("Enter")
    expect(_entry(phone, "New order")).to_be_visible()
    phone.keyboard.press("Tab")
    expect(_entry(phone, "New order")).to_be_focused()
    phone.keyboard.press("Escape")
    expect(_entry(phone, "New order")).to_be_hidden()
    expect(toggle).to_be_focused()
    phone.keyboard.press("Space")
    expect(_entry(phone, "API")).to_be_visible()
    phone.keyboard.press("Space")
    expect(_entry(phone, "API")).to_be_hidden()


def test_the_phone_menu_opens_by_tap_and_closes_by_a_tap_outside(phone, live_server, alice):
    from playwright.sync_api import expect

    log_in_browser(phone, live_server, alice)
    phone.goto(live_server.url + "/api/")
    phone.locator("summary.nav-toggle").tap()
    expect(_entry(phone, "API")).to_be_visible()
    _entry(phone, re.compile("^Account")).tap()
    expect(phone.get_by_role("heading", name="Your account")).to_be_visible()

    phone.locator("summary.nav-toggle").tap()
    expect(_entry(phone, "API")).to_be_visible()
    box = phone.locator(".nav-links").bounding_box()
    phone.touchscreen.tap(VIEWPORTS["phone"]["width"] / 2, box["y"] + box["height"] + 40)
    expect(_entry(phone, "API")).to_be_hidden()


@pytest.mark.parametrize("phone", [False], indirect=True, ids=["no-javascript"])
def test_the_phone_menu_works_without_javascript(phone, live_server, alice):
    from playwright.sync_api import expect

    log_in_browser(phone, live_server, alice)
    phone.goto(live_server.url + "/api/")
    phone.locator("summary.nav-toggle").tap()
    expect(_entry(phone, "Log out")).to_be_visible()
    _entry(phone, "Log out").tap()
    expect(phone.locator(".topbar-balance")).to_have_count(0)


def test_the_skip_link_moves_focus_to_the_content(browser_page, live_server, alice):
    from playwright.sync_api import expect

    page = browser_page
    page.goto(live_server.url + "/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main#content")).to_be_focused()
    screenshot(page, "layout", "home-anonymous")


def test_a_desktop_without_javascript_shows_every_entry(chromium, live_server, alice):
    from django.db import connections
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=VIEWPORTS["desktop"], java_script_enabled=False)
    page = context.new_page()
    try:
        log_in_browser(page, live_server, alice)
        page.goto(live_server.url + "/api/")
        expect(page.locator("summary.nav-toggle")).to_be_hidden()
        for name in ENTRIES:
            expect(_entry(page, name)).to_be_visible()
    finally:
        context.close()
        connections.close_all()


COMPONENTS = (Path(__file__).parent / "fixtures" / "components.html").read_text()


def test_the_shared_components_fit_a_phone_and_a_desktop(browser_page, live_server):
    """The components at the top of panel.css, on a page of the layout: order tables become
    cards on a phone, a wide table scrolls inside its frame, the two columns stack."""
    page = browser_page
    page.goto(live_server.url + "/terms/")
    page.evaluate("html => { document.querySelector('main').innerHTML = html; }", COMPONENTS)
    phone = page.viewport_size["width"] <= VIEWPORTS["phone"]["width"]

    row_display = page.eval_on_selector(".table-cards tbody tr", "e => getComputedStyle(e).display")
    assert row_display == ("block" if phone else "table-row")
    label = page.eval_on_selector(".table-cards td[data-label='Status']",
                                  "e => getComputedStyle(e, '::before').content")
    assert label == ('"Status"' if phone else "none")
    main, aside = (page.locator(s).bounding_box() for s in (".layout-main", ".layout-aside"))
    assert (aside["y"] >= main["y"] + main["height"]) == phone  # stacked only on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    screenshot(page, "layout", "components")
