"""The Add funds pages: methods as tabs in the admin's order, their terms and a preview of
the typed amount, the demo gateway end to end over HTTP, the history, and nobody else's
payments."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import requests
from django.test import Client

from payments.models import Payment
from tests.conftest import make_customer
from tests.payments_support import make_method, post_demo

pytestmark = pytest.mark.usefixtures("ledger_stays_clean")


@pytest.fixture(autouse=True)
def demo_on(settings):
    settings.PAYMENTS_DEMO_ENABLED = True
    settings.PAYMENTS_DEMO_SECRET = "demo-gateway-secret"
    settings.STRIPE_SECRET_KEY = settings.STRIPE_WEBHOOK_SECRET = ""


@pytest.fixture
def customer(db):
    return make_customer("shopper", balance="3")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_methods_are_tabs_in_the_admins_order_with_their_terms(customer):
    make_method("demo", name="Second", sort_order=2, fee_percent=Decimal("2"))
    make_method("demo", name="First", sort_order=1, min_amount=Decimal("5"),
                bonus_percent=Decimal("10"), bonus_threshold=Decimal("50"))
    make_method("demo", name="Off", enabled=False)
    make_method("demo", name="Regulars only", new_customers_allowed=False)
    make_method("stripe", name="Card")  # no Stripe secrets: not offered
    page = _client(customer).get("/add-funds/")
    tabs = re.findall(r'<a href="\?method=\d+"[^>]*>([^<]+)</a>', page.text)
    assert tabs == ["First", "Second"]
    assert "5.00 USD" in page.text and "10% from 50.00 USD" in page.text
    assert 'aria-current="page">First' in page.text


def test_a_customer_who_paid_before_sees_the_regulars_method(customer):
    method = make_method("demo", name="Demo")
    make_method("demo", name="Regulars only", new_customers_allowed=False)
    Payment.objects.create(user=customer, method=method, gateway="demo", amount=1,
                           currency="USD", state="paid")
    assert "Regulars only" in _client(customer).get("/add-funds/").text


def test_the_preview_shows_fee_bonus_and_what_is_credited(customer):
    method = make_method("demo", fee_percent=Decimal("2.5"), bonus_percent=Decimal("10"),
                         bonus_threshold=Decimal("50"), max_amount=Decimal("500"))
    client = _client(customer)
    big = client.get(f"/add-funds/preview?method={method.pk}&amount=100")
    assert "102.50 USD" in big.text and "2.50 USD" in big.text
    assert "110.00 USD" in big.text  # credited: amount + bonus
    small = client.get(f"/add-funds/preview?method={method.pk}&amount=20")
    assert "20.50 USD" in small.text and "0.00 USD" in small.text
    over = client.get(f"/add-funds/preview?method={method.pk}&amount=600")
    assert "The maximum for this method is 500.00." in over.text
    assert "Type an amount" in client.get(f"/add-funds/preview?method={method.pk}&amount=x").text


def test_amounts_outside_the_limits_are_refused_next_to_the_field(customer):
    method = make_method("demo", min_amount=Decimal("10"))
    response = _client(customer).post("/add-funds/", {"method": method.pk, "amount": "2"})
    assert response.status_code == 200
    assert 'id="id_amount-error"' in response.text and "minimum for this method is 10.00" \
        in response.text
    assert not Payment.objects.exists()


def test_starting_redirects_to_the_gateway_and_the_return_page_waits(customer):
    method = make_method("demo")
    client = _client(customer)
    response = client.post("/add-funds/", {"method": method.pk, "amount": "12.50"})
    payment = Payment.objects.get()
    assert response.status_code == 302
    assert response.url.startswith("/payments/demo/checkout/")
    assert payment.state == "pending" and payment.gateway_id.startswith("demo_")
    checkout = client.get(response.url)
    assert "12.50 USD" in checkout.text
    detail = client.get(f"/add-funds/{payment.pk}/")
    assert "Pending" in detail.text and "every 3s" in detail.text
    history = client.get("/add-funds/")
    assert f'href="/add-funds/{payment.pk}/"' in history.text and "Pending" in history.text


def test_another_customers_payment_is_not_found(customer):
    method = make_method("demo")
    other = make_customer("other")
    theirs = Payment.objects.create(user=other, method=method, gateway="demo", amount=1,
                                    currency="USD")
    client = _client(customer)
    assert client.get(f"/add-funds/{theirs.pk}/").status_code == 404
    assert client.get(f"/add-funds/{theirs.pk}/status").status_code == 404


def test_the_demo_gateway_is_gone_when_turned_off(customer, settings):
    method = make_method("demo")
    client = _client(customer)
    response = client.post("/add-funds/", {"method": method.pk, "amount": "5"})
    settings.PAYMENTS_DEMO_ENABLED = False
    assert client.get(response.url).status_code == 404
    assert client.post("/payments/webhook/demo/", data=b"{}",
                       content_type="application/json").status_code == 404
    assert "No payment method is available" in client.get("/add-funds/").text


def test_a_demo_notification_with_a_stale_or_wrong_signature_is_refused(customer):
    from payments.gateways import demo

    method = make_method("demo")
    client = _client(customer)
    client.post("/add-funds/", {"method": method.pk, "amount": "5"})
    payment = Payment.objects.get()
    checkout = {"gateway_id": payment.gateway_id, "payment_id": payment.pk, "amount": "5.00",
                "currency": "USD"}
    body = demo.notification_body(checkout, "paid")
    stale = client.post("/payments/webhook/demo/", data=body, content_type="application/json",
                        HTTP_DEMO_SIGNATURE=demo.sign(body, "demo-gateway-secret", 1))
    forged = client.post("/payments/webhook/demo/", data=body, content_type="application/json",
                         HTTP_DEMO_SIGNATURE=demo.sign(body, "guess"))
    assert stale.status_code == forged.status_code == 400
    assert post_demo(client, checkout, "paid", currency="EUR").status_code == 200
    payment.refresh_from_db()
    assert payment.state == "pending" and payment.flagged
    assert post_demo(client, checkout, "paid").status_code == 200
    payment.refresh_from_db()
    customer.refresh_from_db()
    assert payment.state == "paid" and customer.balance == Decimal("8")


@pytest.mark.django_db(transaction=True)
def test_the_demo_checkout_notifies_the_webhook_over_http(live_server):
    """The hosted page posts a signed notification to the panel's webhook, as a gateway's
    servers do; the return page then shows what that notification said."""
    customer = make_customer("live", balance="0")
    method = make_method("demo", bonus_percent=Decimal("10"))
    session = requests.Session()
    client = _client(customer)
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    form = session.get(f"{live_server.url}/add-funds/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    headers = {"Referer": f"{live_server.url}/add-funds/"}
    to_gateway = session.post(f"{live_server.url}/add-funds/", headers=headers, data={
        "csrfmiddlewaretoken": token, "method": method.pk, "amount": "10"},
        allow_redirects=False)
    checkout_url = live_server.url + to_gateway.headers["Location"]
    page = session.get(checkout_url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    back = session.post(checkout_url, data={"csrfmiddlewaretoken": token, "outcome": "pay"},
                        headers={"Referer": checkout_url})
    payment = Payment.objects.get()
    assert back.url == f"{live_server.url}/add-funds/{payment.pk}/"
    assert "Paid" in back.text and "10.00 USD was added to your balance." in back.text
    payment.refresh_from_db()
    customer.refresh_from_db()
    assert payment.state == "paid" and customer.balance == Decimal("11")
    assert payment.events.get().outcome == "credited"


def test_an_abandoned_checkout_expires_and_late_money_is_flagged(customer):
    from datetime import timedelta

    from django.utils import timezone

    from payments.tasks import expire_stale_payments

    demo_method = make_method("demo")
    bank = make_method("manual")
    client = _client(customer)
    client.post("/add-funds/", {"method": demo_method.pk, "amount": "5"})
    client.post("/add-funds/", {"method": bank.pk, "amount": "5", "reference": "r"})
    fresh = Payment.objects.create(user=customer, method=demo_method, gateway="demo",
                                   amount=1, currency="USD")
    Payment.objects.exclude(pk=fresh.pk).update(created_at=timezone.now() - timedelta(days=3))
    assert expire_stale_payments() == 1
    abandoned = Payment.objects.get(gateway="demo", state="expired")
    assert Payment.objects.get(gateway="manual").state == "pending"  # staff decide those
    assert Payment.objects.get(pk=fresh.pk).state == "created"
    checkout = {"gateway_id": abandoned.gateway_id, "payment_id": abandoned.pk,
                "amount": "5.00", "currency": "USD"}
    post_demo(client, checkout, "paid")
    abandoned.refresh_from_db()
    customer.refresh_from_db()
    assert abandoned.flagged and "after the payment was expired" in abandoned.flag_reason
    assert customer.balance == Decimal("3")


def test_a_demo_payment_made_to_fail_credits_nothing(customer):
    method = make_method("demo")
    client = _client(customer)
    client.post("/add-funds/", {"method": method.pk, "amount": "5"})
    payment = Payment.objects.get()
    checkout = {"gateway_id": payment.gateway_id, "payment_id": payment.pk, "amount": "5.00",
                "currency": "USD"}
    assert post_demo(client, checkout, "failed").status_code == 200
    assert post_demo(client, checkout, "paid").status_code == 200  # too late: for staff
    payment.refresh_from_db()
    customer.refresh_from_db()
    assert payment.state == "failed" and payment.flagged and customer.balance == Decimal("3")
    page = client.get(f"/add-funds/{payment.pk}/")
    assert "Failed" in page.text and "every 3s" not in page.text
