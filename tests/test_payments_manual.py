"""Manual methods: the customer says what they sent; staff approve (credit once) or reject;
staff settle a flagged payment, with an adjustment when they decide one."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from panel import ledger
from panel.models import LedgerEntry, User
from payments.models import Payment
from tests.conftest import make_customer
from tests.payments_support import make_method

pytestmark = pytest.mark.usefixtures("ledger_stays_clean")


@pytest.fixture
def customer(db):
    return make_customer("transfer", balance="0")


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("boss", "boss@example.com", "pw-123456789")


@pytest.fixture
def bank(db):
    return make_method("manual", name="Bank transfer", bonus_percent=Decimal("10"),
                       instructions="IBAN XX00 0000 0000\nReference: your username")


def _submit(customer, bank, amount="30", reference="TRX-778") -> Payment:
    client = Client()
    client.force_login(customer)
    page = client.get(f"/add-funds/?method={bank.pk}")
    assert "IBAN XX00 0000 0000" in page.text
    response = client.post("/add-funds/", {"method": bank.pk, "amount": amount,
                                           "reference": reference})
    payment = Payment.objects.get(user=customer)
    assert response.status_code == 302 and response["Location"] == f"/add-funds/{payment.pk}/"
    return payment


def test_a_manual_payment_waits_for_staff_and_approval_credits_once(customer, bank, staff):
    payment = _submit(customer, bank)
    assert (payment.state, payment.flagged, payment.customer_reference) == (
        "pending", True, "TRX-778")
    customer.refresh_from_db()
    assert customer.balance == 0
    assert payment.approve(staff) is True
    assert payment.approve(staff) is False
    customer.refresh_from_db()
    assert customer.balance == Decimal("33")
    deposit = LedgerEntry.objects.get(payment_id=payment.pk, kind="deposit")
    assert deposit.actor == staff
    payment.refresh_from_db()
    assert payment.state == "paid" and not payment.flagged
    assert list(payment.events.values_list("outcome", flat=True)) == [
        "approved", "approve refused: not open"]
    call_command("check_ledger")


def test_a_manual_payment_needs_a_reference_and_respects_the_limits(customer, bank):
    client = Client()
    client.force_login(customer)
    missing = client.post("/add-funds/", {"method": bank.pk, "amount": "30"})
    too_much = client.post("/add-funds/", {"method": bank.pk, "amount": "5000",
                                           "reference": "x"})
    assert missing.status_code == too_much.status_code == 200
    assert "This field is required." in missing.text
    assert "The maximum for this method is 1000" in too_much.text
    assert not Payment.objects.exists()


def test_rejection_credits_nothing_and_cannot_follow_approval(customer, bank, staff):
    payment = _submit(customer, bank)
    assert payment.reject(staff, "no such transfer") is True
    payment.refresh_from_db()
    assert (payment.state, payment.error, payment.flagged) == ("failed", "no such transfer",
                                                               False)
    assert payment.approve(staff) is False
    customer.refresh_from_db()
    assert customer.balance == 0


def test_settling_a_flag_can_take_back_a_refunded_payment(customer, bank, staff):
    payment = _submit(customer, bank)
    payment.approve(staff)
    payment.reversed_by_gateway(Payment.State.REFUNDED, "refunded by the bank")
    payment.settle_flag(staff, "bank refunded the transfer", adjustment=Decimal("-33"))
    payment.refresh_from_db()
    customer.refresh_from_db()
    assert not payment.flagged and customer.balance == 0
    assert payment.events.last().outcome == "flag settled"
    call_command("check_ledger")


def test_the_ledger_refuses_a_second_deposit_or_bonus_of_one_payment(customer):
    ledger.deposit(customer.pk, Decimal("5"), payment_id=999)
    ledger.bonus(customer.pk, Decimal("1"), payment_id=999)
    with pytest.raises(ledger.AlreadyRecorded):
        ledger.deposit(customer.pk, Decimal("5"), payment_id=999)
    with pytest.raises(ledger.AlreadyRecorded):
        ledger.bonus(customer.pk, Decimal("1"), payment_id=999)
    customer.refresh_from_db()
    assert customer.balance == Decimal("6")


def test_the_admin_actions_approve_and_settle(customer, bank, staff):
    payment = _submit(customer, bank)
    client = Client()
    client.force_login(staff)
    response = client.post("/admin/payments/payment/", {
        "action": "approve_selected", "_selected_action": [payment.pk]}, follow=True)
    assert "1 of 1 payment(s): approve." in response.text
    customer.refresh_from_db()
    assert customer.balance == Decimal("33")
    page = client.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert page.status_code == 200 and "approved" in page.text


def test_the_admin_cannot_approve_a_card_payment_its_gateway_has_not_paid(customer, staff):
    card = make_method("stripe", name="Card")
    waiting = Payment.objects.create(user=customer, method=card, gateway="stripe",
                                     amount=Decimal("30"), currency="USD",
                                     state=Payment.State.PENDING)
    client = Client()
    client.force_login(staff)
    response = client.post("/admin/payments/payment/", {
        "action": "approve_selected", "_selected_action": [waiting.pk]}, follow=True)

    assert "0 of 1 payment(s): approve." in response.text
    waiting.refresh_from_db()
    customer.refresh_from_db()
    assert waiting.state == Payment.State.PENDING and customer.balance == 0


def test_admins_order_and_enable_methods_from_the_list(staff):
    first = make_method("demo", name="Demo", sort_order=0)
    second = make_method("manual", name="Bank", sort_order=1)
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/payments/paymentmethod/")
    assert page.status_code == 200 and 'name="form-0-sort_order"' in page.text
    response = client.post("/admin/payments/paymentmethod/", {
        "form-TOTAL_FORMS": "2", "form-INITIAL_FORMS": "2",
        "form-0-id": second.pk, "form-0-sort_order": "0", "form-0-enabled": "on",
        "form-1-id": first.pk, "form-1-sort_order": "5", "_save": "Save"})
    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.sort_order, first.enabled, second.sort_order) == (5, False, 0)


def test_the_payment_log_is_append_only(customer, bank, staff):
    from django.db import IntegrityError, transaction

    payment = _submit(customer, bank)
    payment.approve(staff)
    event = payment.events.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        type(event).objects.filter(pk=event.pk).update(outcome="rewritten")
    with pytest.raises(IntegrityError), transaction.atomic():
        event.delete()
