"""The API page in a real browser: log in, create a key, copy it, see it once, revoke it.

Needs Debian's Chromium (`apt-get install -y chromium`) and the `playwright` package; it drives
the system browser, so `playwright install` is never needed.
"""

import re

import pytest

from panel.models import ApiKey
from tests.conftest import screenshot

# The shared session Chromium and browser_page of tests/conftest.py (desktop and phone size):
# a second sync_playwright of its own here would clash with the session's event loop.
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_customer_creates_copies_and_revokes_a_key(browser_page, live_server, alice):
    from playwright.sync_api import expect

    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.goto(f"{live_server.url}/api/")  # not logged in: the login form, then back here
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("pw-123456789")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/api/")
    expect(page.get_by_role("heading", name="API", exact=True)).to_be_visible()
    expect(page.locator("code.endpoint")).to_have_text(f"{live_server.url}/api/v2")

    page.get_by_label("Name").fill("my bot")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-api-key")
    expect(shown).to_be_visible()
    raw = shown.inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", raw)
    assert ApiKey.objects.authenticate(raw).user == alice

    copy = page.locator("button.copy-button")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    expect(page.get_by_role("status")).to_have_text("The key is in your clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    screenshot(page, "api", "new-key")

    page.reload()
    expect(page.locator("#new-api-key")).to_have_count(0)
    assert raw not in page.content()
    row = page.locator("table.keys tbody tr", has_text="my bot")
    expect(row).to_contain_text(f"{raw[:8]}…")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(page.get_by_text("revoked: it no longer works")).to_be_visible()
    expect(page.locator("table.keys")).to_have_count(0)
    assert ApiKey.objects.authenticate(raw) is None


def test_dismissing_the_confirmation_keeps_the_key(browser_page, live_server, alice, client):
    from playwright.sync_api import expect

    key, raw = ApiKey.issue(alice, "keep me")
    client.force_login(alice)
    cookie = client.cookies["sessionid"]
    page = browser_page
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value,
                               "url": live_server.url}])
    page.goto(f"{live_server.url}/api/")

    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name=re.compile("^Revoke")).click()

    assert asked == ["Revoke this key? Scripts that use it stop working at once."]
    expect(page.locator("table.keys tbody tr", has_text="keep me")).to_have_count(1)
    assert ApiKey.objects.authenticate(raw) == key
