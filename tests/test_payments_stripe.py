"""Stripe Checkout: a payment is credited once whatever Stripe sends, how often and in what
order; only verified notifications count; refunds and disputes flag, never take money.

Stripe's outgoing API is stubbed at the HTTP boundary (responses); notifications are signed
with a test endpoint secret by the stripe library's own signing scheme."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
import responses
from django.core.management import call_command
from django.test import Client

from panel.ledger import mismatched_balances
from panel.models import LedgerEntry
from payments.checkout import start_payment
from payments.models import Payment, PaymentEvent
from tests.conftest import make_customer
from tests.payments_support import (
    SITE,
    STRIPE_KEY,
    STRIPE_SECRET,
    make_method,
    post_stripe,
    stripe_event,
    stripe_session,
)

SESSIONS = "https://api.stripe.com/v1/checkout/sessions"

pytestmark = pytest.mark.usefixtures("ledger_stays_clean")


@pytest.fixture(autouse=True)
def stripe_settings(settings):
    settings.STRIPE_SECRET_KEY = STRIPE_KEY
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.PANEL_CURRENCY = "USD"


@pytest.fixture
def method(db):
    # 20.00 + 2.5% fee = 20.50 to pay; a 10% bonus from 10.00 gives 2.00.
    return make_method("stripe", fee_percent=Decimal("2.5"), bonus_percent=Decimal("10"),
                       bonus_threshold=Decimal("10"))


def _start(customer, method, session_id="cs_test_1") -> Payment:
    with responses.RequestsMock() as mock:
        authorized = responses.matchers.header_matcher({"Authorization": f"Bearer {STRIPE_KEY}"})
        mock.post(SESSIONS, match=[authorized], json={
            "id": session_id, "object": "checkout.session",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}"})
        started = start_payment(customer, method, Decimal("20.00"), site=SITE)
        sent = str(mock.calls[0].request.body)
    assert started.redirect_url == f"https://checkout.stripe.com/c/pay/{session_id}"
    assert "line_items[0][price_data][unit_amount]=2050" in sent
    assert f"client_reference_id={started.payment.pk}" in sent
    return started.payment


def _entries(payment: Payment) -> list[tuple[str, Decimal]]:
    return sorted(LedgerEntry.objects.filter(payment_id=payment.pk).values_list("kind", "amount"))


def _balance(user) -> Decimal:
    user.refresh_from_db()
    return user.balance


def _ledger_clean() -> None:
    assert mismatched_balances() == []
    call_command("check_ledger")


@pytest.fixture
def customer(db):
    return make_customer("payer", balance="5")


def test_checkout_starts_pending_with_stripes_session_id(customer, method):
    payment = _start(customer, method)
    payment.refresh_from_db()
    assert (payment.state, payment.gateway_id) == ("pending", "cs_test_1")
    assert (payment.amount, payment.fee, payment.bonus) == (Decimal("20"), Decimal("0.5"),
                                                            Decimal("2"))


def test_a_refused_checkout_fails_the_payment_and_credits_nothing(customer, method):
    with responses.RequestsMock() as mock:
        mock.post(SESSIONS, status=400, json={"error": {"message": "Invalid currency",
                                                        "type": "invalid_request_error"}})
        started = start_payment(customer, method, Decimal("20.00"), site=SITE)
    assert started.redirect_url == ""
    started.payment.refresh_from_db()
    assert started.payment.state == "failed"
    assert "Invalid currency" in started.payment.error


def test_paid_replayed_ten_times_credits_once_with_one_bonus(customer, method):
    payment = _start(customer, method)
    body = stripe_event("checkout.session.completed", stripe_session(payment))
    client = Client()
    for _ in range(10):
        assert post_stripe(client, body).status_code == 200
    payment.refresh_from_db()
    assert payment.state == "paid" and payment.credited_amount == Decimal("20")
    assert _entries(payment) == [("bonus", Decimal("2")), ("deposit", Decimal("20"))]
    assert _balance(customer) == Decimal("27")
    outcomes = list(PaymentEvent.objects.filter(payment=payment).values_list("outcome", flat=True))
    assert outcomes == ["credited"] + ["duplicate"] * 9
    _ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_five_deliveries_at_the_same_time_credit_once():
    customer = make_customer("racer", balance="0")
    method = make_method("stripe", fee_percent=Decimal("2.5"), bonus_percent=Decimal("5"))
    payment = _start(customer, method)
    body = stripe_event("checkout.session.completed", stripe_session(payment))
    barrier = threading.Barrier(5)
    codes: list[int] = []

    def deliver() -> None:
        from django.db import connection

        client = Client()
        barrier.wait()
        try:
            codes.append(post_stripe(client, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 5
    assert _entries(payment) == [("bonus", Decimal("1")), ("deposit", Decimal("20"))]
    assert _balance(customer) == Decimal("21")
    assert sorted(PaymentEvent.objects.filter(payment=payment).values_list(
        "outcome", flat=True)) == ["credited"] + ["duplicate"] * 4
    _ledger_clean()


def test_succeeded_before_completed_credits_once_and_stays_paid(customer, method):
    payment = _start(customer, method)
    client = Client()
    succeeded = stripe_event("checkout.session.async_payment_succeeded",
                             stripe_session(payment), event_id="evt_2")
    completed_unpaid = stripe_event("checkout.session.completed",
                                    stripe_session(payment, payment_status="unpaid"),
                                    event_id="evt_1")
    assert post_stripe(client, succeeded).status_code == 200
    assert post_stripe(client, completed_unpaid).status_code == 200
    payment.refresh_from_db()
    assert payment.state == "paid"
    assert _entries(payment) == [("bonus", Decimal("2")), ("deposit", Decimal("20"))]
    assert list(payment.events.values_list("outcome", flat=True)) == ["credited",
                                                                      "ignored: paid"]
    _ledger_clean()


def test_the_return_url_before_any_notification_shows_pending_and_credits_nothing(
        customer, method):
    payment = _start(customer, method)
    client = Client()
    client.force_login(customer)
    # The customer's browser comes back first, with whatever it likes in the URL.
    page = client.get(f"/add-funds/{payment.pk}/?session_id=cs_test_1&status=paid")
    assert page.status_code == 200
    assert "Pending" in page.text and 'hx-trigger="every 3s"' in page.text
    assert _balance(customer) == Decimal("5")
    # Then the pending notice (delayed method), then the money.
    post_stripe(client, stripe_event("checkout.session.completed",
                                     stripe_session(payment, payment_status="unpaid")))
    payment.refresh_from_db()
    assert payment.state == "pending" and _balance(customer) == Decimal("5")
    post_stripe(client, stripe_event("checkout.session.async_payment_succeeded",
                                     stripe_session(payment), event_id="evt_2"))
    status = client.get(f"/add-funds/{payment.pk}/status")
    assert "Paid" in status.text and "every 3s" not in status.text
    assert "27.00" in status.text  # the top bar's balance, swapped out of band
    assert _balance(customer) == Decimal("27")
    _ledger_clean()


@pytest.mark.parametrize("how", ["forged", "stale", "unsigned"])
def test_an_unverified_notification_is_refused_and_writes_nothing(customer, method, how,
                                                                  caplog):
    payment = _start(customer, method)
    body = stripe_event("checkout.session.completed", stripe_session(payment))
    client = Client()
    if how == "forged":
        response = post_stripe(client, body, secret="whsec_someone_else")
    elif how == "stale":
        response = post_stripe(client, body, timestamp=int(time.time()) - 301)
    else:
        response = client.post("/payments/webhook/stripe/", data=body,
                               content_type="application/json")
    assert response.status_code == 400
    assert PaymentEvent.objects.count() == 0
    payment.refresh_from_db()
    assert payment.state == "pending" and not payment.flagged
    assert _balance(customer) == Decimal("5")
    assert "refused a stripe notification" in caplog.text
    _ledger_clean()


@pytest.mark.parametrize(("amount", "currency", "reason"), [
    (100, "usd", "amount 1 instead of 20.5"),
    (2050, "eur", "currency EUR instead of USD"),
])
def test_a_mismatched_paid_notification_is_recorded_and_flagged_not_credited(
        customer, method, amount, currency, reason):
    payment = _start(customer, method)
    body = stripe_event("checkout.session.completed",
                        stripe_session(payment, amount=amount, currency=currency))
    assert post_stripe(Client(), body).status_code == 200
    payment.refresh_from_db()
    assert payment.state == "pending"
    assert payment.flagged and reason in payment.flag_reason
    assert payment.flag_balance == Decimal("5")
    event = payment.events.get()
    assert event.outcome.startswith("flagged:") and event.kind == "paid"
    assert _entries(payment) == [] and _balance(customer) == Decimal("5")
    _ledger_clean()


@pytest.mark.parametrize(("event_type", "state"), [
    ("checkout.session.async_payment_failed", "failed"),
    ("checkout.session.expired", "expired"),
])
def test_failed_and_expired_end_the_payment_and_a_late_paid_is_flagged(customer, method,
                                                                       event_type, state):
    payment = _start(customer, method)
    client = Client()
    post_stripe(client, stripe_event(event_type, stripe_session(payment, status="expired",
                                                                payment_status="unpaid")))
    payment.refresh_from_db()
    assert payment.state == state and not payment.flagged
    post_stripe(client, stripe_event("checkout.session.completed", stripe_session(payment),
                                     event_id="evt_late"))
    payment.refresh_from_db()
    assert payment.state == state and payment.flagged
    assert f"after the payment was {state}" in payment.flag_reason
    assert _entries(payment) == [] and _balance(customer) == Decimal("5")
    _ledger_clean()


@pytest.mark.parametrize(("event_type", "obj", "state"), [
    ("charge.refunded", {"object": "charge", "amount_refunded": 2050}, "refunded"),
    ("charge.dispute.created", {"object": "dispute", "amount": 2050}, "disputed"),
])
def test_refund_or_dispute_after_crediting_flags_with_the_balance_and_takes_nothing(
        customer, method, event_type, obj, state):
    payment = _start(customer, method)
    client = Client()
    post_stripe(client, stripe_event("checkout.session.completed", stripe_session(payment)))
    assert _balance(customer) == Decimal("27")
    reversal = stripe_event(event_type, {**obj, "id": "ch_1", "currency": "usd",
                                         "payment_intent": f"pi_{payment.pk}"}, "evt_9")
    for _ in range(2):
        assert post_stripe(client, reversal).status_code == 200
    payment.refresh_from_db()
    assert payment.state == state and payment.flagged
    assert payment.flag_balance == Decimal("27")
    assert f"{state} at the gateway (20.5 USD) after crediting 20" in payment.flag_reason
    assert _entries(payment) == [("bonus", Decimal("2")), ("deposit", Decimal("20"))]
    assert _balance(customer) == Decimal("27")
    _ledger_clean()


def test_a_refund_of_a_payment_never_credited_changes_nothing(customer, method):
    payment = _start(customer, method)
    post_stripe(Client(), stripe_event("charge.refunded", {
        "id": "ch_1", "object": "charge", "amount_refunded": 2050, "currency": "usd",
        "payment_intent": f"pi_{payment.pk}"}))
    # Before the session completed, the PaymentIntent is not known: nothing to act on.
    assert PaymentEvent.objects.get().outcome == "unknown payment"
    payment.refresh_from_db()
    assert payment.state == "pending" and not payment.flagged


def test_the_status_query_applies_stripes_answer_like_a_notification(customer, method):
    payment = _start(customer, method)
    client = Client()
    client.force_login(customer)
    with responses.RequestsMock() as mock:
        mock.get(f"{SESSIONS}/cs_test_1", json=stripe_session(payment))
        page = client.get(f"/add-funds/{payment.pk}/status")
        again = client.get(f"/add-funds/{payment.pk}/status")  # paid: no second query
        assert len(mock.calls) == 1
    assert "Paid" in page.text and "Paid" in again.text
    assert _entries(payment) == [("bonus", Decimal("2")), ("deposit", Decimal("20"))]
    _ledger_clean()


def test_an_event_we_do_not_handle_is_logged_as_ignored(customer, method):
    _start(customer, method)
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert post_stripe(Client(), body).status_code == 200
    assert json.loads(body)["type"] == "customer.created"
    assert PaymentEvent.objects.get().outcome == "unknown payment"
