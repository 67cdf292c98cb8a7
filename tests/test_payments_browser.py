"""The demo customer adds funds through the demo gateway in Chromium, at desktop and phone
size, and sees the balance rise once — paying twice on the gateway's page credits nothing
more. A payment left unpaid waits, pending, on its page, which turns to Paid by itself when the
notification comes. Screenshots under
var/screenshots/payments/."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from panel.models import LedgerEntry
from payments.gateways import demo
from payments.models import Payment
from tests.conftest import log_in_browser, make_customer, screenshot
from tests.payments_support import make_method

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("ledger_stays_clean")]


@pytest.fixture(autouse=True)
def demo_on(settings):
    settings.PAYMENTS_DEMO_ENABLED = True
    settings.PAYMENTS_DEMO_SECRET = "demo-gateway-secret"


def test_the_demo_customer_adds_funds_through_the_demo_gateway(browser_page, live_server):
    from playwright.sync_api import expect

    page = browser_page
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy"
            in m.text else None)
    customer = make_customer("customer", balance="100")
    make_method("demo", name="Demo gateway", fee_percent=Decimal("2"),
                bonus_percent=Decimal("5"), bonus_threshold=Decimal("20"))
    make_method("manual", name="Bank transfer", sort_order=1,
                instructions="Transfer to IBAN XX00 DEMO 0000 0000.")
    log_in_browser(page, live_server, customer)

    page.goto(f"{live_server.url}/")
    page.locator(".topbar-balance-link").click()
    expect(page.get_by_role("heading", name="Add funds", exact=True)).to_be_visible()
    expect(page.locator("#topbar-balance")).to_have_text("100.00 USD")
    page.get_by_label("Amount to add (USD)").fill("25")
    preview = page.locator("#amount-preview")
    expect(preview).to_contain_text("25.50 USD")  # 2% fee on top
    expect(preview).to_contain_text("26.25 USD")  # 5% bonus from 20
    screenshot(page, "payments", "add-funds")

    page.get_by_role("button", name="Continue to Demo gateway").click()
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    checkout_url = page.url
    screenshot(page, "payments", "demo-checkout")
    page.get_by_role("button", name="Pay 25.50 USD").click()

    payment = Payment.objects.get()
    expect(page).to_have_url(f"{live_server.url}/add-funds/{payment.pk}/")
    expect(page.locator("#payment-status")).to_contain_text("Paid")
    expect(page.locator("#payment-status")).to_contain_text("25.00 USD was added")
    expect(page.locator("#topbar-balance")).to_have_text("126.25 USD")
    screenshot(page, "payments", "payment-paid")

    # Paying again on the gateway's page sends another notification: nothing more credited.
    page.goto(checkout_url)
    page.get_by_role("button", name="Pay 25.50 USD").click()
    expect(page.locator("#payment-status")).to_contain_text("Paid")
    page.reload()
    expect(page.locator("#topbar-balance")).to_have_text("126.25 USD")
    assert sorted(LedgerEntry.objects.filter(payment_id=payment.pk).values_list(
        "kind", "amount")) == [("bonus", Decimal("1.25")), ("deposit", Decimal("25"))]

    # A payment left on the gateway's page waits on its own page, polling.
    page.goto(f"{live_server.url}/add-funds/")
    page.get_by_label("Amount to add (USD)").fill("10")
    page.get_by_role("button", name="Continue to Demo gateway").click()
    page.get_by_role("link", name="Go back without paying").click()
    expect(page.locator("#payment-status")).to_contain_text("Pending")
    expect(page.locator("#payment-status")).to_contain_text("updates by itself")
    screenshot(page, "payments", "payment-pending")
    # The notification arrives later, from the gateway's servers: the page sees it by itself.
    waiting = Payment.objects.get(state="pending")
    body = demo.notification_body({"gateway_id": waiting.gateway_id, "payment_id": waiting.pk,
                                   "amount": "10.20", "currency": "USD"}, "paid")
    assert requests.post(f"{live_server.url}/payments/webhook/demo/", data=body, timeout=10,
                         headers={demo.HEADER: demo.sign(body, "demo-gateway-secret")}).ok
    expect(page.locator("#payment-status")).to_contain_text("10.00 USD was added")
    expect(page.locator("#topbar-balance")).to_have_text("136.25 USD")

    page.goto(f"{live_server.url}/add-funds/")
    expect(page.locator("table")).to_contain_text("Paid")
    screenshot(page, "payments", "history")
    page.get_by_role("link", name="Bank transfer").click()
    expect(page.get_by_text("Transfer to IBAN XX00 DEMO 0000 0000.")).to_be_visible()
    screenshot(page, "payments", "manual-method")
    customer.refresh_from_db()
    assert customer.balance == Decimal("136.25")
    assert refused == []
