"""The staff desk's tickets and customers in Chromium, at desktop and phone size.

A customer opens a refill ticket from an order's page; a staff member logs in with a second
factor, finds it unread in the inbox, notes it, and asks for the refill from the ticket; the
panel's real sweeps send the refill to the sandbox over HTTP and poll it done; the customer
reads the answer (and got it by mail). A staff member with the balances area adjusts a
balance, refused first without a reason. The ledger holds after each. Screenshots of every
page under var/screenshots/tickets/ and var/screenshots/desk/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.core import mail
from django.core.management import call_command

from desk.models import AuditEntry
from orders.models import Order, Refill
from orders.placing import place_order
from panel.models import LedgerEntry
from support.models import Ticket
from tests.conftest import (
    make_customer,
    make_service,
    make_staff,
    open_page,
    screenshot,
    totp_code,
)
from tests.test_customer_journey_browser import Beat, _menu, _wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_limits(settings, request):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"desk-{request.node.nodeid}"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def beat(settings) -> Iterator[Beat]:
    settings.POLL_FIRST_DELAY = 0
    settings.POLL_MAX_DELAY = 1
    beat = Beat()
    beat.thread.start()
    beat.running.set()
    yield beat
    beat.stopped.set()
    beat.thread.join(timeout=10)


def _size(page) -> str:
    return "phone" if page.viewport_size["width"] < 500 else "desktop"


PASSWORD = "pw-123456789"  # make_customer's


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _staff_with_second_factor(page, live_server, settings, username: str, *areas: str):
    """A staff member logging in with password and TOTP code, as STAFF_REQUIRE_MFA asks."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from playwright.sync_api import expect

    settings.STAFF_REQUIRE_MFA = True
    staff = make_staff(username, *areas)
    secret = generate_totp_secret()
    TOTP.activate(staff, secret)
    _log_in(page, live_server, username)
    expect(page.get_by_role("heading", name="Second factor")).to_be_visible()
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    return staff


def test_a_refill_ticket_from_the_customers_message_to_the_refill_being_done(
        browser_page, chromium, live_server, catalog, sandbox, beat, settings):
    from playwright.sync_api import expect

    page, size = browser_page, _size(browser_page)
    service = make_service(catalog, "Default", refill=True, upstream={"refill": True})
    customer = make_customer(f"ticketer{size}")
    order = place_order(customer, service.pk, {"link": f"https://instagram.com/p/tk{size}",
                                               "quantity": service.min_quantity})
    _wait_for(lambda: Order.objects.get(pk=order.pk).status == Order.Status.COMPLETED)

    # The customer asks for a refill from the order's page.
    _log_in(page, live_server, customer.username)
    page.goto(f"{live_server.url}/orders/{order.pk}/")
    page.get_by_role("link", name="Ask support about this order").click()
    expect(page.get_by_label("Subject")).to_have_value("order")
    expect(page.get_by_label("Order IDs")).to_have_value(str(order.pk))
    expect(page.get_by_label("Transaction ID")).to_be_hidden()  # a Payment ticket's field
    page.get_by_label("Request").select_option("refill")
    page.get_by_label("Message").fill("My followers dropped by half, please refill.")
    screenshot(page, "tickets", "new-ticket")
    page.get_by_role("button", name="Send ticket").click()
    ticket = Ticket.objects.get(user=customer)
    expect(page.get_by_role("heading", name=f"Ticket {ticket.pk}")).to_be_visible()
    expect(page.locator(".ticket-page h1 .badge")).to_have_text("Open")
    screenshot(page, "tickets", "ticket-open")
    _menu(page, "Tickets").click()
    expect(page.get_by_role("link", name="Order: Refill")).to_be_visible()
    screenshot(page, "tickets", "tickets")

    # A staff member, with a second factor, handles it from the inbox.
    desk = open_page(chromium, size)
    try:
        staff = _staff_with_second_factor(desk, live_server, settings, f"desk{size}")
        desk.goto(f"{live_server.url}/staff/tickets/")
        row = desk.locator("tr", has=desk.get_by_role("link", name=f"#{ticket.pk}"))
        expect(row.locator(".badge.unread")).to_have_text("Unread")
        expect(row).to_contain_text("My followers dropped by half")
        screenshot(desk, "desk", "tickets-inbox")
        row.get_by_role("link", name=f"#{ticket.pk}").click()
        expect(desk.get_by_role("heading", name=f"Ticket {ticket.pk}")).to_be_visible()
        desk.get_by_label("Note").fill("Checked upstream: the drop is real.")
        desk.get_by_role("button", name="Add note").click()
        expect(desk.get_by_text("Internal note added.")).to_be_visible()
        desk.get_by_label("Message before the results").fill("Sorry for the drop.")
        screenshot(desk, "desk", "ticket")
        desk.get_by_role("button", name="Refill the orders and answer").click()
        expect(desk.get_by_text("1 of 1 orders done")).to_be_visible()
        refill = Refill.objects.get(order=order)
        # The sweeps send it to the sandbox and poll it done, as beat and a worker would.
        _wait_for(lambda: Refill.objects.get(pk=refill.pk).status == Refill.Status.COMPLETED)
        desk.reload()
        expect(desk.locator(".thread-message.from-staff")).to_contain_text(
            f"Order {order.pk}: refill {refill.pk} requested.")
        expect(desk.get_by_text(f"#{refill.pk} Completed")).to_be_visible()
        screenshot(desk, "desk", "ticket-answered")
    finally:
        desk.context.close()

    # The customer reads the answer, was mailed it, and sees the refill done.
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    expect(page.locator(".ticket-page h1 .badge")).to_have_text("Answered")
    answer = page.locator(".thread-message.from-staff")
    expect(answer).to_contain_text("Sorry for the drop.")
    expect(answer).to_contain_text(f"refill {refill.pk} requested")
    expect(page.get_by_text("Checked upstream")).to_have_count(0)
    expect(page.get_by_text(staff.username)).to_have_count(0)
    screenshot(page, "tickets", "ticket-answered")
    page.get_by_role("button", name="Close ticket").click()
    expect(page.get_by_text("This ticket is closed.")).to_be_visible()
    expect(page.get_by_role("button", name="Send reply")).to_have_count(0)
    screenshot(page, "tickets", "ticket-closed")
    sent = [m for m in mail.outbox if m.to == [customer.email]]
    assert len(sent) == 1 and f"/tickets/{ticket.pk}/" in str(sent[0].body)
    page.goto(f"{live_server.url}/refills/")
    expect(page.locator("tr", has_text=str(order.pk)).locator(".badge")).to_have_text(
        "Completed")
    assert AuditEntry.objects.filter(actor=staff, order=order, action="ticket_refill").exists()
    call_command("check_ledger")


def test_a_staff_member_adjusts_a_balance_with_a_reason(
        browser_page, live_server, settings):
    from playwright.sync_api import expect

    page, size = browser_page, _size(browser_page)
    customer = make_customer(f"funded{size}", balance="40")
    make_customer(f"other{size}")
    Ticket.open(customer.pk, "Where is my bank transfer?", subject="payment",
                payment_method="Bank transfer", transaction_id="BT-7781")
    cashier = _staff_with_second_factor(page, live_server, settings, f"cash{size}",
                                        "balances")
    page.goto(f"{live_server.url}/staff/customers/")
    page.get_by_label("Username, email or id").fill(customer.username)
    page.get_by_role("button", name="Search").click()
    screenshot(page, "desk", "customers")
    page.get_by_role("link", name=customer.username, exact=True).click()
    expect(page.get_by_role("heading", name=customer.username)).to_be_visible()
    expect(page.locator("[data-customer-balance]")).to_have_text("40.00 USD")
    screenshot(page, "desk", "customer")

    # Without a reason nothing moves, and the form says why beside the field.
    page.get_by_label("Amount").fill("12.50")
    page.get_by_role("button", name="Adjust balance").click()
    expect(page.locator(".field-error").first).to_have_text("This field is required.")
    screenshot(page, "desk", "customer-adjust-refused")
    assert not LedgerEntry.objects.filter(user=customer, kind="adjustment").exists()

    page.get_by_label("Amount").fill("12.50")
    page.get_by_label("Reason", exact=True).first.fill("bank transfer BT-7781 arrived")
    page.get_by_role("button", name="Adjust balance").click()
    expect(page.get_by_text(re.compile(r"Balance adjusted by 12\.5"))).to_be_visible()
    expect(page.locator("[data-customer-balance]")).to_have_text("52.50 USD")
    expect(page.locator(".history")).to_contain_text("bank transfer BT-7781 arrived")
    screenshot(page, "desk", "customer-adjusted")
    entry = LedgerEntry.objects.get(user=customer, kind="adjustment")
    assert (entry.memo, entry.actor_id) == ("bank transfer BT-7781 arrived", cashier.pk)
    assert AuditEntry.objects.get(action="balance_adjusted").actor == cashier

    # Suspended, by keyboard: the reason, then Enter on the button.
    suspend = page.locator("form", has=page.get_by_role("button", name="Suspend customer"))
    suspend.get_by_label("Reason").fill("chargeback on the transfer")
    suspend.get_by_role("button", name="Suspend customer").focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1 .badge")).to_have_text("Suspended")
    expect(page.get_by_role("heading", name="Reinstate")).to_be_visible()
    screenshot(page, "desk", "customer-suspended")
    customer.refresh_from_db()
    assert not customer.is_active
    call_command("check_ledger")
