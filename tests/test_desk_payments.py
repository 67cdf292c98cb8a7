"""The payments desk at /staff/payments/: manual payments approved (credited once) or
rejected, flagged ones settled with or without an adjustment, each with its audit row in the
customer's history; guarded by the desk's payments area; lists in constant queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, reverse

from desk import urls as desk_urls
from desk.models import AuditEntry
from panel.models import LedgerEntry, User
from payments.checkout import start_payment
from payments.models import Payment
from tests.conftest import make_customer, make_staff
from tests.payments_support import make_method

pytestmark = pytest.mark.usefixtures("ledger_stays_clean")

# Every address of the payments desk, so one added later is guarded by these tests too.
PAYMENT_URLS = [p.name for p in desk_urls.urlpatterns
                if isinstance(p, URLPattern) and p.name and p.name.startswith("payment")]


@pytest.fixture
def customer(db):
    return make_customer("payer", balance="0")


@pytest.fixture
def bank(db):
    return make_method("manual", name="Bank transfer", bonus_percent=Decimal("10"),
                       instructions="IBAN XX00 0000 0000")


@pytest.fixture
def cashier(db):
    return make_staff("cashier", "payments")


@pytest.fixture
def desk(cashier):
    client = Client()
    client.force_login(cashier)
    return client


def manual_payment(customer: User, bank, amount: str = "30",
                   reference: str = "TRX-1") -> Payment:
    return start_payment(customer, bank, Decimal(amount), reference=reference,
                         site="http://testserver").payment


def disputed_payment(customer: User, amount: str = "20") -> Payment:
    """A gateway payment credited, then disputed: flagged with the balance of that moment."""
    method = make_method("demo", name="Card")
    payment = Payment.objects.create(user=customer, method=method, gateway="demo",
                                     amount=Decimal(amount), currency="USD",
                                     gateway_id=f"demo_{Payment.objects.count()}")
    assert payment.credit(Decimal(amount))
    payment.reversed_by_gateway(Payment.State.DISPUTED, "charge.dispute.created: fraudulent")
    return payment


def _url(name: str, pk: int) -> str:
    return reverse(f"desk:{name}") if name == "payments" else reverse(f"desk:{name}",
                                                                      args=[pk])


def _balance(user: User) -> Decimal:
    user.refresh_from_db()
    return user.balance


# --- who may ------------------------------------------------------------------------------

def test_a_member_without_the_payments_area_gets_403_on_every_payments_url(customer, bank):
    assert len(PAYMENT_URLS) == 5
    payment = manual_payment(customer, bank)
    client = Client()
    client.force_login(make_staff("sam", "balances", "orders", "tickets"))
    for name in PAYMENT_URLS:
        url = _url(name, payment.pk)
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"approve-amount": "30", "approve-reason": "x",
                                 "reject-reason": "x", "settle-reason": "x"}).status_code == 403
    payment.refresh_from_db()
    assert (payment.state, _balance(customer)) == ("pending", 0)
    assert not AuditEntry.objects.exists()
    page = client.get(reverse("desk:customer", args=[customer.pk]))
    assert page.status_code == 200
    assert reverse("desk:payments") not in page.text  # no link to an area it cannot open
    assert f"#{payment.pk}" in page.text  # but the customer's payments are listed


def test_customers_and_visitors_get_404_on_every_payments_url(customer, bank):
    payment = manual_payment(customer, bank)
    client = Client()
    for who in (None, customer):
        if who is not None:
            client.force_login(who)
        for name in PAYMENT_URLS:
            url = _url(name, payment.pk)
            assert client.get(url).status_code == 404, url
            assert client.post(url, {"approve-amount": "30",
                                     "approve-reason": "x"}).status_code == 404, url
    assert _balance(customer) == 0


def test_an_unknown_payment_is_404(desk):
    assert desk.get(reverse("desk:payment", args=[999999])).status_code == 404
    assert desk.post(reverse("desk:payment_approve", args=[999999]),
                     {"approve-amount": "1", "approve-reason": "x"}).status_code == 404


# --- approve and reject -----------------------------------------------------------------------

def test_approving_credits_once_and_leaves_its_audit_row_in_the_customers_history(
        desk, cashier, customer, bank):
    payment = manual_payment(customer, bank)
    url = reverse("desk:payment_approve", args=[payment.pk])
    data = {"approve-amount": "30", "approve-reason": "seen on the bank statement"}
    first = desk.post(url, data, follow=True)
    assert "approved: 30.00 USD credited" in first.text
    again = desk.post(url, data, follow=True)
    assert "the payment moved on" in again.text
    assert _balance(customer) == Decimal("33")  # 30 and the method's 10% bonus, once
    assert LedgerEntry.objects.filter(payment_id=payment.pk, kind="deposit").count() == 1
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.customer, entry.action, entry.reason) == (
        cashier, customer, "payment_approved", "seen on the bank statement")
    assert entry.details["payment"] == payment.pk and Decimal(entry.details["amount"]) == 30
    payment.refresh_from_db()
    assert (payment.state, payment.flagged) == ("paid", False)
    assert list(payment.events.values_list("outcome", "note")) == [
        ("approved", "seen on the bank statement")]
    history = desk.get(reverse("desk:customer", args=[customer.pk])).text
    assert "approved a payment" in history and "seen on the bank statement" in history
    assert reverse("desk:payment", args=[payment.pk]) in history


def test_approval_needs_a_reason_and_credits_at_most_what_was_asked(desk, customer, bank):
    payment = manual_payment(customer, bank)
    url = reverse("desk:payment_approve", args=[payment.pk])
    no_reason = desk.post(url, {"approve-amount": "30"})
    too_much = desk.post(url, {"approve-amount": "31", "approve-reason": "x"})
    zero = desk.post(url, {"approve-amount": "0", "approve-reason": "x"})
    assert no_reason.status_code == too_much.status_code == zero.status_code == 400
    assert "This field is required." in no_reason.text
    assert "At most what was asked: 30.00 USD." in too_much.text
    assert _balance(customer) == 0 and not AuditEntry.objects.exists()

    smaller = desk.post(url, {"approve-amount": "25.50", "approve-reason": "25.50 arrived"})
    assert smaller.status_code == 302
    assert _balance(customer) == Decimal("25.50")  # no bonus on less than the whole amount
    payment.refresh_from_db()
    assert payment.credited_amount == Decimal("25.50")
    assert Decimal(AuditEntry.objects.get().details["asked"]) == 30


def test_rejecting_credits_nothing_and_approval_cannot_follow(desk, customer, bank):
    payment = manual_payment(customer, bank)
    refused = desk.post(reverse("desk:payment_reject", args=[payment.pk]), {})
    assert refused.status_code == 400
    rejected = desk.post(reverse("desk:payment_reject", args=[payment.pk]),
                         {"reject-reason": "no transfer TRX-1 on the statement"}, follow=True)
    assert "rejected: nothing credited" in rejected.text
    late = desk.post(reverse("desk:payment_approve", args=[payment.pk]),
                     {"approve-amount": "30", "approve-reason": "found it"}, follow=True)
    assert "the payment moved on" in late.text
    payment.refresh_from_db()
    assert (payment.state, payment.error, payment.flagged) == (
        "failed", "no transfer TRX-1 on the statement", False)
    assert _balance(customer) == 0
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["payment_rejected"]


def test_an_open_gateway_payment_waits_for_its_gateway_not_for_staff(desk, customer):
    method = make_method("demo", name="Card")
    payment = Payment.objects.create(user=customer, method=method, gateway="demo",
                                     amount=Decimal("10"), currency="USD", state="pending")
    page = desk.get(reverse("desk:payment", args=[payment.pk]))
    assert "Approve and credit" not in page.text
    response = desk.post(reverse("desk:payment_approve", args=[payment.pk]),
                         {"approve-amount": "10", "approve-reason": "looks paid"}, follow=True)
    assert "the payment moved on" in response.text
    assert _balance(customer) == 0 and not AuditEntry.objects.exists()


# --- settle -------------------------------------------------------------------------------

def test_settling_a_disputed_payment_takes_the_money_back_once_with_the_reason(
        desk, cashier, customer):
    payment = disputed_payment(customer)
    assert (payment.state, payment.flagged, payment.flag_balance) == (
        "disputed", True, Decimal("20"))
    page = desk.get(reverse("desk:payment", args=[payment.pk]))
    assert "charge.dispute.created: fraudulent" in page.text and "Settle flag" in page.text
    url = reverse("desk:payment_settle", args=[payment.pk])
    data = {"settle-adjustment": "-20", "settle-reason": "dispute lost at the bank"}
    settled = desk.post(url, data, follow=True)
    assert "the balance was adjusted by -20.00 USD" in settled.text
    again = desk.post(url, data, follow=True)
    assert "the payment moved on" in again.text
    assert _balance(customer) == 0
    adjustment = LedgerEntry.objects.get(user=customer, kind="adjustment")
    assert adjustment.amount == Decimal("-20") and adjustment.actor == cashier
    assert "dispute lost at the bank" in adjustment.memo
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.customer, Decimal(entry.details["amount"])) == (
        "payment_flag_settled", customer, -20)
    assert Decimal(entry.details["balance_before"]) == 20
    payment.refresh_from_db()
    assert not payment.flagged and payment.state == "disputed"
    assert payment.events.last().outcome == "flag settled"


def test_settling_without_an_adjustment_leaves_the_balance(desk, customer):
    payment = disputed_payment(customer)
    desk.post(reverse("desk:payment_settle", args=[payment.pk]),
              {"settle-adjustment": "", "settle-reason": "dispute won"})
    assert _balance(customer) == Decimal("20")
    assert AuditEntry.objects.get().details["amount"] is None
    assert not Payment.objects.get(pk=payment.pk).flagged


def test_a_settlement_that_would_overdraw_changes_nothing(desk, customer):
    payment = disputed_payment(customer)
    no_reason = desk.post(reverse("desk:payment_settle", args=[payment.pk]),
                          {"settle-adjustment": "-20"})
    assert no_reason.status_code == 400
    overdraw = desk.post(reverse("desk:payment_settle", args=[payment.pk]),
                         {"settle-adjustment": "-25", "settle-reason": "take it all"})
    assert overdraw.status_code == 400
    assert "The balance does not cover this deduction." in overdraw.text
    payment.refresh_from_db()
    assert payment.flagged and _balance(customer) == Decimal("20")
    assert not AuditEntry.objects.exists()
    assert not payment.events.filter(outcome="flag settled").exists()


# --- the list, the badge, the alert -------------------------------------------------------------

def test_the_tabs_sort_payments_for_staff(desk, customer, bank):
    waiting = manual_payment(customer, bank, reference="REF-WAIT")
    disputed = disputed_payment(customer)
    done = manual_payment(customer, bank, reference="REF-DONE")
    done.reject(User.objects.get(username="cashier"), "not found")

    def listed(tab: str) -> str:
        page = desk.get(reverse("desk:payments"), {"tab": tab})
        assert page.status_code == 200
        return page.text

    review, flagged, every = listed("review"), listed("flagged"), listed("all")
    link = lambda p: f'href="/staff/payments/{p.pk}/"'  # noqa: E731
    assert link(waiting) in review and link(disputed) not in review
    assert link(disputed) in flagged and link(waiting) not in flagged
    assert "charge.dispute.created: fraudulent" in flagged
    assert all(link(p) in every for p in (waiting, disputed, done))
    assert 'To review <span class="count">1</span>' in review
    assert 'Flagged <span class="count">1</span>' in review
    assert 'All <span class="count">3</span>' in review
    searched = desk.get(reverse("desk:payments"), {"tab": "all", "q": "REF-WAIT"}).text
    assert link(waiting) in searched and link(done) not in searched


def test_the_list_runs_the_same_queries_whatever_its_length(desk, bank):
    def queries(tab: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert desk.get(reverse("desk:payments"), {"tab": tab}).status_code == 200
        return len(captured)

    first = make_customer("first", balance="0")
    manual_payment(first, bank)
    disputed_payment(first)
    few = {tab: queries(tab) for tab in ("review", "flagged", "all")}
    for n in range(12):
        someone = make_customer(f"payer{n}", balance="0")
        manual_payment(someone, bank)
        disputed_payment(someone, amount="5")
    assert {tab: queries(tab) for tab in ("review", "flagged", "all")} == few


def test_a_customers_page_lists_their_payments_in_constant_queries(desk, customer, bank):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = desk.get(reverse("desk:customer", args=[customer.pk]))
        assert page.status_code == 200
        return len(captured)

    first = manual_payment(customer, bank, reference="FIRST")
    few = queries()
    for _n in range(8):
        disputed_payment(customer, amount="3")
    assert queries() == few
    page = desk.get(reverse("desk:customer", args=[customer.pk])).text
    assert f'href="/staff/payments/{first.pk}/"' in page and "Bank transfer" in page


def test_the_navigation_and_alerts_count_payments_waiting_for_staff(desk, customer, bank):
    manual_payment(customer, bank)
    disputed_payment(customer)
    page = desk.get(reverse("desk:attention")).text
    assert 'data-payments-count>2<' in page
    alerts = desk.get(reverse("desk:alerts")).text
    assert "2 payments waiting for staff" in alerts and "1 to review, 1 flagged." in alerts
    other = Client()
    other.force_login(make_staff("sam"))
    assert "data-payments-count" not in other.get(reverse("desk:attention")).text
    assert "payments waiting" not in other.get(reverse("desk:alerts")).text


@pytest.mark.django_db(transaction=True)
def test_two_staff_settling_one_flag_at_once_take_the_money_back_once(customer):
    """The desk locks the payment before it looks at the flag: the second settlement sees
    it cleared and writes nothing, so the adjustment is applied once. The test holds the
    payment's row while both start, so both are under way before either can finish."""
    import threading
    import time

    from django.db import connections, transaction

    from desk import payments as decisions

    payment = disputed_payment(customer, amount="40")  # room for two deductions of 20
    staff = [make_staff(f"cashier{n}", "payments") for n in range(2)]
    results: list[bool] = []

    def settle(actor: User) -> None:
        try:
            results.append(decisions.settle(actor, Payment.objects.get(pk=payment.pk),
                                            "dispute lost", Decimal("-20")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=settle, args=(actor,)) for actor in staff]
    with transaction.atomic():
        Payment.objects.select_for_update().get(pk=payment.pk)
        for thread in threads:
            thread.start()
        time.sleep(1)
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False, True]
    assert _balance(customer) == Decimal("20")
    assert LedgerEntry.objects.filter(user=customer, kind="adjustment").count() == 1
    assert AuditEntry.objects.filter(action="payment_flag_settled").count() == 1


# --- flags raised by gateways' own messages ------------------------------------------------------

def _demo_paid(client: Client, payment: Payment, amount: str) -> None:
    """The demo gateway's signed `paid` notification, as its checkout page sends it."""
    from payments.gateways import demo

    body = demo.notification_body({"gateway_id": payment.gateway_id, "payment_id": payment.pk,
                                   "amount": amount, "currency": "USD"}, "paid")
    response = client.post("/payments/webhook/demo/", data=body,
                           content_type="application/json",
                           headers={demo.HEADER: demo.sign(body, "demo-secret")})
    assert response.status_code == 200


@pytest.fixture
def demo_card(settings, db):
    settings.PAYMENTS_DEMO_ENABLED = True
    settings.PAYMENTS_DEMO_SECRET = "demo-secret"
    return make_method("demo", name="Card")


def test_a_mismatched_amount_is_approved_for_what_arrived(desk, customer, demo_card):
    payment = start_payment(customer, demo_card, Decimal("20"), site="http://testserver").payment
    _demo_paid(Client(), payment, "15.00")
    payment.refresh_from_db()
    assert payment.is_open and payment.flagged and _balance(customer) == 0
    listed = desk.get(reverse("desk:payments"), {"tab": "flagged"}).text
    assert f'href="/staff/payments/{payment.pk}/"' in listed
    page = desk.get(reverse("desk:payment", args=[payment.pk])).text
    assert "Approve and credit" in page and "Settle flag" in page
    desk.post(reverse("desk:payment_approve", args=[payment.pk]),
              {"approve-amount": "15", "approve-reason": "15 of 20 arrived, asked the customer"})
    assert _balance(customer) == Decimal("15")
    payment.refresh_from_db()
    assert (payment.state, payment.credited_amount, payment.flagged) == (
        "paid", Decimal("15"), False)


def test_money_arriving_after_expiry_is_credited_by_settling_with_an_adjustment(
        desk, customer, demo_card):
    payment = start_payment(customer, demo_card, Decimal("20"), site="http://testserver").payment
    assert payment.mark(Payment.State.EXPIRED)
    _demo_paid(Client(), payment, "20.00")
    payment.refresh_from_db()
    assert payment.state == "expired" and payment.flagged and _balance(customer) == 0
    page = desk.get(reverse("desk:payment", args=[payment.pk])).text
    assert "money arrived after the payment was expired" in page
    assert "Approve and credit" not in page and "Settle flag" in page
    desk.post(reverse("desk:payment_settle", args=[payment.pk]),
              {"settle-adjustment": "20", "settle-reason": "late payment, credited by hand"})
    assert _balance(customer) == Decimal("20")
    assert AuditEntry.objects.get().action == "payment_flag_settled"
