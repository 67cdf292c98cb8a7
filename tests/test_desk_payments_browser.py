"""The payments desk in Chromium, at desktop and phone size.

A customer submits a bank transfer on /add-funds/; a staff member with the payments area logs
in with a second factor, finds it to review, approves it with a reason, and the customer's
balance rises once (approving again from the stale page changes nothing). A payment disputed
after crediting is settled from the flagged tab with an adjustment and a reason. The ledger
holds after each. Screenshots under var/screenshots/desk/payments-*.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from desk.models import AuditEntry
from panel.models import LedgerEntry
from payments.models import Payment
from tests.conftest import log_in_browser, make_customer, open_page, screenshot
from tests.payments_support import make_method
from tests.test_desk_tickets_browser import _size, _staff_with_second_factor

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("ledger_stays_clean")]


@pytest.fixture(autouse=True)
def fresh_limits(settings, request):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"paydesk-{request.node.nodeid}"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _open_payments_from_the_menu(page) -> None:
    toggle = page.locator("summary.nav-toggle")
    if toggle.is_visible() and page.locator("details.nav-menu").get_attribute("open") is None:
        toggle.click()
    page.locator(".nav-links").get_by_role("link", name="Payments").click()


def _form(page, button: str):
    return page.locator("form", has=page.get_by_role("button", name=button))


def _disputed(customer, amount: str) -> Payment:
    """A card payment credited, then disputed at the gateway: flagged, balance untouched."""
    method = make_method("demo", name="Card", enabled=False)
    payment = Payment.objects.create(user=customer, method=method, gateway="demo",
                                     amount=Decimal(amount), currency="USD",
                                     gateway_id=f"demo_dispute_{customer.pk}")
    assert payment.credit(Decimal(amount))
    payment.reversed_by_gateway(Payment.State.DISPUTED,
                                "charge.dispute.created: the card holder disputes it")
    return payment


def test_staff_approve_a_bank_transfer_and_settle_a_disputed_payment(
        browser_page, chromium, live_server, settings):
    from playwright.sync_api import expect

    page, size = browser_page, _size(browser_page)
    customer = make_customer(f"wire{size}", balance="10")
    make_method("manual", name="Bank transfer",
                instructions="Transfer to IBAN XX00 DEMO 0000 0000, your username as reference.")

    # The customer says what they sent.
    log_in_browser(page, live_server, customer)
    page.goto(f"{live_server.url}/add-funds/")
    expect(page.get_by_text("Transfer to IBAN XX00 DEMO 0000 0000")).to_be_visible()
    page.get_by_label("Amount to add (USD)").fill("40")
    page.get_by_label("Your payment's reference").fill(f"BT-{size}-778")
    page.get_by_role("button", name="I have paid: send for review").click()
    payment = Payment.objects.get(user=customer)
    expect(page.locator("#payment-status")).to_contain_text("Pending")
    expect(page.locator("#topbar-balance")).to_have_text("10.00 USD")
    screenshot(page, "desk", "payments-customer-submitted")

    desk = open_page(chromium, size)
    try:
        staff = _staff_with_second_factor(desk, live_server, settings, f"cash{size}",
                                          "payments")
        desk.goto(f"{live_server.url}/staff/")
        expect(desk.locator("[data-payments-count]")).to_contain_text("1")
        _open_payments_from_the_menu(desk)
        row = desk.locator("tr", has=desk.get_by_role("link", name=f"#{payment.pk}"))
        expect(row).to_contain_text(customer.username)
        expect(row).to_contain_text(f"BT-{size}-778")
        expect(row).to_contain_text("40.00 USD")
        screenshot(desk, "desk", "payments-review")
        row.get_by_role("link", name=f"#{payment.pk}").click()
        expect(desk.get_by_role("heading", name=f"Payment {payment.pk}")).to_be_visible()
        approve = _form(desk, "Approve and credit")
        expect(approve.get_by_label("Amount to credit")).to_have_value("40.00")

        screenshot(desk, "desk", "payments-manual")

        # No reason, no credit: the form says so beside the field.
        approve.get_by_role("button", name="Approve and credit").click()
        expect(desk.locator(".field-error").first).to_have_text("This field is required.")
        screenshot(desk, "desk", "payments-approve-refused")
        assert not LedgerEntry.objects.filter(payment_id=payment.pk).exists()
        approve = _form(desk, "Approve and credit")
        approve.get_by_label("Reason").fill(f"BT-{size}-778 is on the bank statement")
        approve.get_by_role("button", name="Approve and credit").click()
        expect(desk.get_by_text("40.00 USD credited")).to_be_visible()
        expect(desk.locator("[data-payment-balance]")).to_have_text("50.00 USD")
        expect(desk.locator("table")).to_contain_text("approved")
        screenshot(desk, "desk", "payments-approved")

        # The page as it was before, submitted again: nothing more is credited.
        desk.go_back()
        stale = _form(desk, "Approve and credit")
        stale.get_by_label("Reason").fill("approving twice by mistake")
        stale.get_by_role("button", name="Approve and credit").click()
        expect(desk.get_by_text("the payment moved on")).to_be_visible()

        page.reload()
        expect(page.locator("#topbar-balance")).to_have_text("50.00 USD")
        expect(page.locator("#payment-status")).to_contain_text("Paid")
        assert LedgerEntry.objects.filter(payment_id=payment.pk).count() == 1

        # A card payment disputed after crediting: the flagged tab, an adjustment, a reason.
        disputed = _disputed(customer, "25")
        desk.goto(f"{live_server.url}/staff/payments/?tab=flagged")
        row = desk.locator("tr", has=desk.get_by_role("link", name=f"#{disputed.pk}"))
        expect(row).to_contain_text("the card holder disputes it")
        expect(row).to_contain_text("75.00 USD")  # the balance when flagged, and now
        screenshot(desk, "desk", "payments-flagged")
        row.get_by_role("link", name=f"#{disputed.pk}").click()
        settle = _form(desk, "Settle flag")
        settle.get_by_label("Balance adjustment").fill("-25")
        settle.get_by_label("Reason").fill("dispute lost: the bank took the 25 back")
        screenshot(desk, "desk", "payments-flagged-payment")
        settle.get_by_role("button", name="Settle flag").click()
        expect(desk.get_by_text("the balance was adjusted by -25.00 USD")).to_be_visible()
        expect(desk.locator("[data-payment-balance]")).to_have_text("50.00 USD")
        expect(desk.get_by_role("button", name="Settle flag")).to_have_count(0)
        screenshot(desk, "desk", "payments-settled")

        # Both decisions are in the customer's history, with the payments listed.
        desk.get_by_role("link", name=customer.username).first.click()
        history = desk.locator("ol.history")
        expect(history).to_contain_text("approved a payment")
        expect(history).to_contain_text("settled a flagged payment")
        expect(history).to_contain_text("dispute lost: the bank took the 25 back")
        expect(desk.locator("[data-customer-balance]")).to_have_text("50.00 USD")
        screenshot(desk, "desk", "payments-customer")
    finally:
        desk.context.close()

    customer.refresh_from_db()
    assert customer.balance == Decimal("50")
    assert sorted(AuditEntry.objects.filter(actor=staff).values_list("action", flat=True)) == [
        "payment_approved", "payment_flag_settled"]
