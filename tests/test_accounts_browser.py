"""A new customer's first visit in Chromium, at desktop and phone size: sign up, verify the
address from the mail, log in, set a time zone, look at the password page, log out; and the
page a customer sees when their account's logins are paused."""

import re

import pytest
from django.core import mail

from panel.models import User
from tests.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a-new-long-passphrase-42"


@pytest.fixture(autouse=True)
def fresh_limits(settings, request):
    """Own rate-limit cache per test; a fast hasher (hashing is not under test here)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"accounts-browser-{request.node.nodeid}"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _open_menu_if_folded(page):
    """On a phone the entries sit behind the menu button."""
    toggle = page.locator("summary.nav-toggle")
    if toggle.is_visible() and page.locator("details.nav-menu").get_attribute("open") is None:
        toggle.click()


def _nav(page, name):
    _open_menu_if_folded(page)
    return page.locator(".nav-links").get_by_role("link", name=name)


def test_a_new_customer_signs_up_verifies_logs_in_and_sets_a_time_zone(browser_page,
                                                                         live_server):
    from playwright.sync_api import expect

    page = browser_page
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Username").fill("newcustomer")
    page.get_by_label("Email").fill("newcustomer@example.com")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    # Without the terms box: refused, the error under the box.
    expect(page.locator("#id_terms-error")).to_have_text(
        re.compile("Please accept the terms of service"))
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password (again)").fill(NEW_PASSWORD)
    page.get_by_label("I accept the terms of service").check()
    screenshot(page, "accounts", "signup")
    page.get_by_role("button", name="Sign up").click()

    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    screenshot(page, "accounts", "verify-sent")
    sent = [m for m in mail.outbox if m.to == ["newcustomer@example.com"]]
    assert len(sent) == 1
    link = re.search(r"https?://\S+", sent[0].body).group(0)
    page.goto(link)
    page.get_by_role("button", name="Yes, confirm it").click()

    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Username or email").fill("newcustomer@example.com")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    screenshot(page, "accounts", "login")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".topbar-balance")).to_have_text(re.compile(r"0\.00 USD"))

    _nav(page, re.compile("^Account")).click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Your profile is saved.")).to_be_visible()
    expect(page.locator("time[data-now]")).to_have_text(re.compile(r"CES?T$"))
    assert User.objects.get(username="newcustomer").time_zone == "Europe/Berlin"
    screenshot(page, "accounts", "profile")

    page.get_by_role("link", name="Change password").click()
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    screenshot(page, "accounts", "password-change")

    _open_menu_if_folded(page)
    page.get_by_role("button", name="Log out").click()
    _open_menu_if_folded(page)
    expect(page.locator(".nav-links").get_by_role("link", name="Log in")).to_be_visible()
    expect(page.locator(".topbar-balance")).to_have_count(0)


def test_a_locked_account_sees_when_to_try_again(browser_page, live_server, alice, settings):
    from playwright.sync_api import expect

    settings.AXES_FAILURE_LIMIT = 3
    page = browser_page
    page.goto(live_server.url + "/accounts/login/")
    for _ in range(3):
        page.get_by_label("Username or email").fill("alice")
        page.get_by_label("Password").fill("wrong-guess")
        page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Logging in to this account is paused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("There were 3 failed logins")
    expect(page.get_by_text("try again in 60 minutes")).to_be_visible()
    screenshot(page, "accounts", "locked-out")
