"""NOWPayments: the invoice is asked for over its API (stubbed at the HTTP boundary); IPNs
signed with HMAC-SHA512 over the sorted JSON body; partially paid credits what arrived."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import responses
from django.core.management import call_command
from django.test import Client

from panel.models import LedgerEntry
from payments.checkout import start_payment
from payments.models import PaymentEvent
from tests.conftest import make_customer
from tests.payments_support import NOW_KEY, NOW_SECRET, SITE, make_method, now_ipn, post_now

INVOICE = "https://api.nowpayments.io/v1/invoice"

pytestmark = pytest.mark.usefixtures("ledger_stays_clean")


@pytest.fixture(autouse=True)
def now_settings(settings):
    settings.NOWPAYMENTS_API_KEY = NOW_KEY
    settings.NOWPAYMENTS_IPN_SECRET = NOW_SECRET


@pytest.fixture
def customer(db):
    return make_customer("crypto", balance="0")


@pytest.fixture
def payment(customer):
    # 50.00 + 1% = 50.50 to pay; a 4% bonus from 25.00 gives 2.00 on a full payment.
    method = make_method("nowpayments", fee_percent=Decimal("1"), bonus_percent=Decimal("4"),
                         bonus_threshold=Decimal("25"))
    with responses.RequestsMock() as mock:
        mock.post(INVOICE, json={"id": "4522625843", "order_id": "1",
                                 "invoice_url": "https://nowpayments.io/payment/?iid=4522625843"})
        started = start_payment(customer, method, Decimal("50.00"), site=SITE)
        sent = json.loads(mock.calls[0].request.body)
        assert mock.calls[0].request.headers["x-api-key"] == NOW_KEY
    assert sent["price_amount"] == "50.50" and sent["price_currency"] == "usd"
    assert sent["order_id"] == str(started.payment.pk)
    assert sent["ipn_callback_url"] == "http://testserver/payments/webhook/nowpayments/"
    assert sent["success_url"] == f"http://testserver/add-funds/{started.payment.pk}/"
    assert started.redirect_url == "https://nowpayments.io/payment/?iid=4522625843"
    started.payment.refresh_from_db()
    return started.payment


def _credited(customer) -> list[tuple[str, Decimal]]:
    return sorted(LedgerEntry.objects.filter(user=customer, payment_id__isnull=False)
                  .values_list("kind", "amount"))


def test_finished_replayed_credits_once_with_the_bonus(customer, payment):
    client = Client()
    for status in ("waiting", "confirming", "finished", "finished", "confirmed", "finished"):
        assert post_now(client, now_ipn(payment, status)).status_code == 200
    payment.refresh_from_db()
    assert payment.state == "paid" and payment.credited_amount == Decimal("50")
    assert _credited(customer) == [("bonus", Decimal("2")), ("deposit", Decimal("50"))]
    call_command("check_ledger")


def test_partially_paid_credits_what_arrived_never_what_was_asked(customer, payment):
    # 40% of the asked coins arrived: 40% of 50.50 paid, of which 50/50.50 is not fee → 20.00.
    body = now_ipn(payment, "partially_paid", pay_amount=0.0025, actually_paid=0.001)
    assert post_now(Client(), body).status_code == 200
    payment.refresh_from_db()
    assert payment.state == "paid" and payment.credited_amount == Decimal("20")
    assert _credited(customer) == [("deposit", Decimal("20"))]  # no bonus on a partial payment
    assert payment.events.get().outcome == "credited part: 20.00"
    # The rest arriving later is for staff, not a second credit.
    post_now(Client(), now_ipn(payment, "finished"))
    payment.refresh_from_db()
    assert payment.flagged and "after a partial credit of 20" in payment.flag_reason
    assert _credited(customer) == [("deposit", Decimal("20"))]
    call_command("check_ledger")


def test_expired_and_failed_end_the_payment(customer, payment):
    post_now(Client(), now_ipn(payment, "expired"))
    payment.refresh_from_db()
    assert payment.state == "expired"
    post_now(Client(), now_ipn(payment, "failed"))
    payment.refresh_from_db()
    assert payment.state == "expired" and _credited(customer) == []


@pytest.mark.parametrize("how", ["forged", "tampered", "unsigned"])
def test_an_unverified_ipn_is_refused_and_writes_nothing(customer, payment, how):
    client = Client()
    data = now_ipn(payment, "finished")
    if how == "forged":
        response = post_now(client, data, secret="not-the-secret")
    elif how == "tampered":
        from payments.gateways.nowpayments import signature

        sig = signature(data, NOW_SECRET)
        body = json.dumps({**data, "price_amount": 5000}).encode()
        response = client.post("/payments/webhook/nowpayments/", data=body,
                               content_type="application/json", HTTP_X_NOWPAYMENTS_SIG=sig)
    else:
        response = client.post("/payments/webhook/nowpayments/", data=json.dumps(data),
                               content_type="application/json")
    assert response.status_code == 400
    assert PaymentEvent.objects.count() == 0
    assert _credited(customer) == []


def test_a_finished_ipn_for_another_amount_is_flagged_not_credited(customer, payment):
    post_now(Client(), now_ipn(payment, "finished", price_amount=5.05))
    payment.refresh_from_db()
    assert payment.state == "pending" and payment.flagged
    assert "amount 5.05 instead of 50.5" in payment.flag_reason
    assert _credited(customer) == []
    call_command("check_ledger")


def test_refunded_after_crediting_flags_and_keeps_the_balance(customer, payment):
    post_now(Client(), now_ipn(payment, "finished"))
    post_now(Client(), now_ipn(payment, "refunded"))
    payment.refresh_from_db()
    customer.refresh_from_db()
    assert payment.state == "refunded" and payment.flagged
    assert payment.flag_balance == customer.balance == Decimal("52")
    call_command("check_ledger")
