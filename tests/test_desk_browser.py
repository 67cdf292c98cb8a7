"""The staff desk in Chromium, at desktop and phone size, with the second factor on.

A staff member logs in with a TOTP code computed here from the secret, finds three orders on
the attention queue, links a parked one to the upstream order found by hand and watches the
real poll sweep complete it (the sandbox over HTTP), resends another and follows it to
Completed, and settles a partial whose remains the upstream did not say; the ledger holds
after. Every desk page is saved under var/screenshots/desk/.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core.management import call_command

from orders.cancels import request_cancel, send_cancels
from orders.dispatch import dispatch_due, dispatch_one
from orders.models import Order
from orders.placing import place_order
from orders.polling import poll_orders
from orders.refills import request_refill, send_refills
from panel.models import LedgerEntry
from tests.conftest import (
    make_customer,
    make_service,
    make_staff,
    screenshot,
    totp_code,
    valid_add_params,
)

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-123456789"  # make_customer's


@pytest.fixture(autouse=True)
def desk_settings(settings, request):
    settings.STAFF_REQUIRE_MFA = True
    settings.POLL_FIRST_DELAY = 0
    settings.POLL_MAX_DELAY = 1
    # Codes used once are remembered in the cache: one of its own per test.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"desk-{request.node.nodeid}"}}


def place(user, service, name: str) -> Order:
    params = valid_add_params({"service": service.pk, "type": service.type,
                               "min": service.min_quantity})
    return place_order(user, service.pk, {**params, "link": f"https://instagram.com/p/{name}"})


def park(sandbox, service, user, name: str, fault: str) -> Order:
    order = place(user, service, name)
    sandbox.set_fault(fault, action="add", times=1)
    dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION
    return order


def bought(sandbox, order) -> list[int]:
    return [a["order"] for a in sandbox.adds()
            if a["params"].get("link") == order.link and a["order"] is not None]


def log_in_with_code(page, live_server, username: str, secret: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/accounts/login/?next=/staff/")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Second factor")).to_be_visible()
    screenshot(page, "desk", "second-factor")
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Attention")).to_be_visible()


def open_actions(page, pk: int):
    item = page.locator(f"#order-{pk}")
    details = item.locator("details.desk-item-actions")
    if details.get_attribute("open") is None:
        item.locator("summary", has_text="Actions").click()
    return item


def test_staff_resolve_resend_and_settle_with_the_second_factor(
        browser_page, live_server, sandbox, catalog):
    from playwright.sync_api import expect

    page = browser_page
    service = make_service(catalog, "Default")
    alice = make_customer("alice", balance="50")
    staff = make_staff("sam")
    secret = generate_totp_secret()
    TOTP.activate(staff, secret)

    found = park(sandbox, service, alice, "found", "truncated")  # bought, we never heard
    [upstream_id] = bought(sandbox, found)
    again = park(sandbox, service, alice, "again", "garbage")  # never bought
    assert bought(sandbox, again) == []
    partial = place(alice, service, "partial")
    dispatch_one(partial.pk)
    partial.refresh_from_db()
    sandbox.force_order(partial.upstream_id, "Partial", "Unknown")
    poll_orders()
    partial.refresh_from_db()
    assert partial.status == "partial" and partial.flagged_at is not None

    # Anybody not logged in meets the 404 of a page that does not exist.
    assert page.goto(f"{live_server.url}/staff/").status == 404
    log_in_with_code(page, live_server, "sam", secret)
    expect(page.locator("[data-attention-count]").first).to_contain_text("3")
    expect(page.locator(f"#order-{again.pk}")).to_contain_text("outcome unknown")
    screenshot(page, "desk", "attention")

    # A group's action first confirms, listing what would happen to each order. The two
    # parked sends broke alike (their replies could not be read): one group, before the
    # flagged Partial's.
    page.locator(".desk-group").first.get_by_role("button", name="Fail and refund all…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("2 orders")
    expect(page.locator(".desk-plan")).to_contain_text(f"#{found.pk}")
    expect(page.locator(".desk-plan")).to_contain_text(f"#{again.pk}")
    screenshot(page, "desk", "bulk")
    page.locator(".desk-bulk").get_by_role("link", name="Cancel", exact=True).click()
    expect(page.get_by_role("heading", name="Attention")).to_be_visible()
    assert Order.objects.filter(status="failed").count() == 0  # nothing happened

    # 1. Attach the upstream id found by hand; the real poll sweep completes the order.
    item = open_actions(page, found.pk)
    item.get_by_label("Upstream order id").fill(str(upstream_id))
    item.get_by_label("Note").first.fill("found on the provider's site")
    screenshot(page, "desk", "attention-actions")
    item.get_by_role("button", name="Attach and poll").click()
    expect(page.locator(".message.success")).to_contain_text(f"Order {found.pk}")
    page.goto(f"{live_server.url}/staff/orders/{found.pk}/")
    expect(page.locator("#order-status .badge").first).to_have_text("Pending")
    poll_orders()
    expect(page.locator("#order-status .badge").first).to_have_text("Completed", timeout=10_000)
    expect(page.locator(".desk-history")).to_contain_text("attach_upstream_id")
    screenshot(page, "desk", "order")

    # 2. Resend the other, warned that it may buy twice, and follow it to Completed.
    page.goto(f"{live_server.url}/staff/")
    item = open_actions(page, again.pk)
    expect(item.locator(".desk-warning")).to_contain_text("A resend can buy twice.")
    item.get_by_label("Why (required)").first.fill("checked upstream: not there")
    item.get_by_role("button", name="Resend").click()
    expect(page.locator(".message.success")).to_contain_text(f"Order {again.pk}")
    assert dispatch_due() == 1
    poll_orders()
    again.refresh_from_db()
    assert again.status == "completed" and len(bought(sandbox, again)) == 1

    # 3. Settle the partial whose remains nobody said.
    item = open_actions(page, partial.pk)
    half = partial.charged_units // 2
    item.get_by_label("Undelivered").fill(str(half))
    item.locator(".desk-action-settle_remains").get_by_label("Why (required)").fill(
        "half counted on the post")
    item.get_by_role("button", name="Refund the undelivered share").click()
    expect(page.locator(".message.success")).to_contain_text(f"Order {partial.pk}")
    expect(page.locator("[data-attention-count]").first).to_contain_text("0")
    screenshot(page, "desk", "attention-empty")
    refund = LedgerEntry.objects.get(order_id=partial.pk, kind="refund")
    assert refund.amount == partial.undelivered_share(half) and refund.actor_id == staff.pk
    found.refresh_from_db()
    assert found.status == "completed" and not LedgerEntry.objects.filter(
        order_id=found.pk, kind="refund").exists()
    alice.refresh_from_db()
    assert alice.balance == Decimal("50") - found.charge - again.charge - partial.charge \
        + refund.amount
    call_command("check_ledger")

    # A refill and a cancel whose sends came back garbled: the refill desk marks one done.
    refillable = make_service(catalog, "Default", refill=True, cancel=True,
                              upstream={"refill": True, "cancel": True})
    done = place(alice, refillable, "refillme")
    dispatch_one(done.pk)
    poll_orders()
    refill = request_refill(alice, done.pk)
    sandbox.set_fault("garbage", action="refill", times=1)
    send_refills()
    refill.refresh_from_db()
    assert refill.status == "needs_attention"
    live = place(alice, refillable, "cancelme")
    dispatch_one(live.pk)
    live.refresh_from_db()
    sandbox.force_order(live.upstream_id, "In progress")
    poll_orders()
    request_cancel(alice, live.pk)
    sandbox.set_fault("garbage", action="cancel", times=1)
    send_cancels()
    page.goto(f"{live_server.url}/staff/refills/")
    row = page.locator(f"#refill-{refill.pk}")
    row.locator("summary", has_text="Actions").click()
    screenshot(page, "desk", "refills")
    row.get_by_label("Reason").fill("refilled, counted on the profile")
    row.get_by_role("button", name="Mark done").click()
    expect(page.locator(".message.success")).to_contain_text(f"Refill {refill.pk}")
    refill.refresh_from_db()
    assert refill.status == "completed"
    page.goto(f"{live_server.url}/staff/cancels/")
    expect(page.locator(f"#cancel-{live.pk}")).to_contain_text("In progress")
    screenshot(page, "desk", "cancels")
    call_command("check_ledger")

    # Every other desk page, for the eye; a provider's balance below its threshold first.
    catalog.balance, catalog.low_balance_threshold = Decimal("4.20"), Decimal("25")
    catalog.save()
    for path, name in [("/staff/orders/", "orders"), ("/staff/customers/", "customers"),
                       ("/staff/tickets/", "tickets"), ("/staff/alerts/", "alerts")]:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        screenshot(page, "desk", name)
    page.goto(f"{live_server.url}/staff/alerts/")
    expect(page.locator(".desk-alerts")).to_contain_text("Low balance at Sandbox")


def test_a_staff_member_without_an_authenticator_sets_one_up(browser_page, live_server):
    from playwright.sync_api import expect

    page = browser_page
    make_staff("kim")
    page.goto(f"{live_server.url}/accounts/login/?next=/staff/")
    page.get_by_label("Username or email").fill("kim")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # Adding a factor asks for the password once more (allauth's reauthentication).
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    screenshot(page, "desk", "set-up-second-factor")
    secret = page.locator("[data-totp-secret]").input_value()
    page.get_by_label("Code from the app").fill(totp_code(secret))
    page.get_by_role("button", name="Activate").click()
    screenshot(page, "desk", "recovery-codes")
    page.get_by_role("link", name="Go to the staff desk").click()
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Attention")).to_be_visible()
