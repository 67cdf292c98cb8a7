"""The customers' desk at /staff/customers/: search, a customer's page, and the account
changes — balance adjustment with a mandatory reason (the balances area only), discount and
custom rates, suspend and reinstate, revoking keys — each with its audit row. Staff accounts
are not customers here (404); the lists take a constant number of queries."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from desk.models import AuditEntry
from orders import pricing
from orders.models import CustomRate, Service
from orders.placing import place_order
from panel.ledger import mismatched_balances
from panel.models import ApiKey, LedgerEntry, User
from panel.templatetags.panel_money import money
from support.models import Ticket
from tests.conftest import make_customer, make_service, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(db):
    return make_staff("sam")  # the Staff group: no balances area


@pytest.fixture
def cashier(db):
    return make_staff("cass", "balances")


@pytest.fixture
def desk(client, cashier):
    client.force_login(cashier)
    return client


def adjust(client, customer, amount, reason="bank transfer 77 arrived late"):
    return client.post(reverse("desk:customer_adjust", args=[customer.pk]),
                       {"adjust-amount": amount, "adjust-reason": reason})


def api(client, key: str, **params):
    return json.loads(client.post("/api/v2", {"key": key, **params}).content)


def test_search_finds_customers_by_name_email_or_id(desk, alice, bob, cashier):
    def found(q):
        html = desk.get(reverse("desk:customers"), {"q": q}).content.decode()
        return {u.username for u in (alice, bob, cashier)
                if reverse("desk:customer", args=[u.pk]) in html}

    assert found("") == {"alice", "bob"}  # staff are not customers
    assert found("ali") == {"alice"}
    assert found("bob@example") == {"bob"}
    assert found(str(alice.pk)) == {"alice"}
    assert found("cass") == set()


def test_the_customer_list_takes_the_same_queries_for_one_or_many(desk, alice):
    desk.get(reverse("desk:customers"))
    with CaptureQueriesContext(connection) as one:
        desk.get(reverse("desk:customers"))
    for n in range(15):
        customer = make_customer(f"many{n}")
        Ticket.open(customer.pk, "hi", subject="other")
    with CaptureQueriesContext(connection) as many:
        html = desk.get(reverse("desk:customers")).content.decode()
    assert len(many) == len(one)
    assert html.count("100.00 USD") == 16


def test_the_customer_page_shows_balance_ledger_orders_tickets_and_keys(
        desk, alice, catalog):
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://instagram.com/p/page",
                                            "quantity": service.min_quantity})
    ticket = Ticket.open(alice.pk, "About my order", subject="order", request="other",
                         order_ids=[order.pk])
    key, _raw = ApiKey.issue(alice, "my bot")
    desk.get(reverse("desk:customer", args=[alice.pk]))
    with CaptureQueriesContext(connection) as few:
        desk.get(reverse("desk:customer", args=[alice.pk]))
    for n in range(10):
        place_order(alice, service.pk, {"link": f"https://instagram.com/p/page{n}",
                                        "quantity": service.min_quantity})
        Ticket.open(alice.pk, "again", subject="service")
        ApiKey.issue(alice, f"bot {n}")
    with CaptureQueriesContext(connection) as more:
        html = desk.get(reverse("desk:customer", args=[alice.pk])).content.decode()
    assert len(more) == len(few)
    alice.refresh_from_db()
    assert money(alice.balance) in html
    assert "test deposit" in html  # the ledger's memo
    assert reverse("desk:order", args=[order.pk]) in html
    assert reverse("desk:ticket", args=[ticket.pk]) in html
    assert f"{key.prefix}…" in html and "my bot" in html


def test_staff_accounts_are_not_customers_here(desk, support):
    assert desk.get(reverse("desk:customer", args=[support.pk])).status_code == 404
    assert adjust(desk, support, "50").status_code == 404
    assert desk.post(reverse("desk:customer_suspend", args=[support.pk]),
                     {"suspend-reason": "x"}).status_code == 404
    support.refresh_from_db()
    assert support.is_active and support.balance == 0


def test_an_adjustment_moves_the_balance_with_its_reason_and_audit_row(desk, alice, cashier):
    response = adjust(desk, alice, "25.5")
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.balance == Decimal("125.5")
    entry = LedgerEntry.objects.get(user=alice, kind="adjustment")
    assert (entry.amount, entry.memo, entry.actor) == (Decimal("25.5"),
                                                       "bank transfer 77 arrived late", cashier)
    audit = AuditEntry.objects.get()
    assert (audit.actor, audit.action, audit.customer_id, audit.reason) == (
        cashier, "balance_adjusted", alice.pk, "bank transfer 77 arrived late")
    assert audit.details["ledger_entry"] == entry.pk
    adjust(desk, alice, "-5", reason="duplicate deposit")
    alice.refresh_from_db()
    assert alice.balance == Decimal("120.5")
    assert mismatched_balances() == []


@pytest.mark.parametrize("amount, reason, error", [
    ("10", "", "This field is required."),
    ("10", "   ", "This field is required."),
    ("0", "why", "An adjustment of zero changes nothing."),
    ("-100.01", "why", "The balance does not cover this deduction."),
    ("ten", "why", "Enter a number."),
])
def test_an_adjustment_is_refused_beside_its_field(desk, alice, amount, reason, error):
    response = adjust(desk, alice, amount, reason)
    assert response.status_code == 400
    assert error in response.content.decode()
    alice.refresh_from_db()
    assert alice.balance == 100
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()
    assert not AuditEntry.objects.exists()


def test_a_support_member_without_the_balances_area_cannot_change_an_account(
        client, support, alice, catalog):
    service = make_service(catalog, "Default")
    key, _raw = ApiKey.issue(alice)
    client.force_login(support)
    assert client.get(reverse("desk:customer", args=[alice.pk])).status_code == 200
    posts = {
        "desk:customer_adjust": {"adjust-amount": "50", "adjust-reason": "because"},
        "desk:customer_discount": {"discount-percent": "50", "discount-reason": "because"},
        "desk:customer_rate": {"rate-service": service.pk, "rate-rate": "0.1",
                               "rate-reason": "because"},
        "desk:customer_suspend": {"suspend-reason": "because"},
    }
    for name, data in posts.items():
        assert client.post(reverse(name, args=[alice.pk]), data).status_code == 403, name
    assert client.post(reverse("desk:customer_key_revoke",
                               args=[alice.pk, key.pk])).status_code == 403
    alice.refresh_from_db()
    assert (alice.balance, alice.discount_percent, alice.is_active) == (100, 0, True)
    assert not CustomRate.objects.exists() and not AuditEntry.objects.exists()
    assert ApiKey.objects.get().revoked_at is None


def test_discount_and_custom_rates_change_the_customers_prices(desk, alice, catalog, cashier):
    service = make_service(catalog, "Default")
    listed = pricing.base_rate(Service.objects.with_routes().get(pk=service.pk))
    desk.post(reverse("desk:customer_discount", args=[alice.pk]),
              {"discount-percent": "10", "discount-reason": "reseller"})
    alice.refresh_from_db()
    fresh = Service.objects.with_routes().get(pk=service.pk)
    assert alice.discount_percent == 10
    assert pricing.customer_rate(fresh, alice) <= listed
    rate = (listed * 2).quantize(Decimal("0.000001"))
    desk.post(reverse("desk:customer_rate", args=[alice.pk]),
              {"rate-service": service.pk, "rate-rate": str(rate), "rate-reason": "deal"})
    assert pricing.customer_rate(fresh, alice) == rate
    html = desk.get(reverse("desk:customer", args=[alice.pk])).content.decode()
    assert f"#{service.pk} {service.name}" in html
    custom = CustomRate.objects.get()
    desk.post(reverse("desk:customer_rate_remove", args=[alice.pk, custom.pk]))
    assert not CustomRate.objects.exists()
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "discount_set", "custom_rate_set", "custom_rate_removed"]
    assert AuditEntry.objects.get(action="discount_set").details == {
        "before": "0.00", "after": "10"}


def test_a_custom_rate_needs_a_service_that_exists(desk, alice):
    response = desk.post(reverse("desk:customer_rate", args=[alice.pk]),
                         {"rate-service": 99999, "rate-rate": "1", "rate-reason": "deal"})
    assert response.status_code == 400 and "No service with this id." in response.content.decode()


def test_suspend_refuses_login_and_keys_until_reinstated(desk, client, alice, cashier):
    from django.test import Client

    _key, raw = ApiKey.issue(alice)
    customer = Client()
    assert api(customer, raw, action="balance")["balance"]
    before = Client()
    before.post(reverse("account_login"), {"login": "alice", "password": "pw-123456789"})
    assert before.session["_auth_user_id"] == str(alice.pk)  # the login works until then
    response = desk.post(reverse("desk:customer_suspend", args=[alice.pk]),
                         {"suspend-reason": "chargeback on deposit"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert not alice.is_active
    assert api(customer, raw, action="balance") == {"error": "Invalid API key"}
    refused = customer.post(reverse("account_login"), {"login": "alice",
                                                       "password": "pw-123456789"})
    assert "_auth_user_id" not in customer.session
    assert refused.status_code in (200, 302)
    assert before.get(reverse("orders")).status_code == 302  # the open session ends too

    # A reason is needed to reinstate too.
    assert desk.post(reverse("desk:customer_suspend", args=[alice.pk]),
                     {"reinstate": "1", "suspend-reason": ""}).status_code == 400
    desk.post(reverse("desk:customer_suspend", args=[alice.pk]),
              {"reinstate": "1", "suspend-reason": "settled"})
    alice.refresh_from_db()
    assert alice.is_active
    assert "balance" in api(customer, raw, action="balance")
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "reason")) == [
        ("customer_suspended", "chargeback on deposit"), ("customer_reinstated", "settled")]


def test_a_suspended_customers_session_ends(desk, client, alice):
    from django.test import Client

    customer = Client()
    customer.force_login(alice)
    assert customer.get(reverse("orders")).status_code == 200
    desk.post(reverse("desk:customer_suspend", args=[alice.pk]), {"suspend-reason": "fraud"})
    assert customer.get(reverse("orders")).status_code == 302  # back to the login page


def test_revoking_a_key_makes_it_invalid(desk, alice, cashier, bob):
    from django.test import Client

    key, raw = ApiKey.issue(alice)
    other, _ = ApiKey.issue(bob)
    # Another customer's key is not revoked through this customer's page.
    assert desk.post(reverse("desk:customer_key_revoke",
                             args=[alice.pk, other.pk])).status_code == 404
    desk.post(reverse("desk:customer_key_revoke", args=[alice.pk, key.pk]),
              {"key-reason": "leaked in a forum"})
    assert api(Client(), raw, action="balance") == {"error": "Invalid API key"}
    assert ApiKey.objects.get(pk=other.pk).revoked_at is None
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.reason, audit.details["key"]) == (
        "api_key_revoked", "leaked in a forum", key.pk)


def test_a_customer_gets_404_on_the_customers_desk(client, alice, bob):
    client.force_login(alice)
    assert client.get(reverse("desk:customers")).status_code == 404
    assert client.get(reverse("desk:customer", args=[bob.pk])).status_code == 404
    assert adjust(client, alice, "1000").status_code == 404
    alice.refresh_from_db()
    assert alice.balance == 100 and not User.objects.get(pk=bob.pk).is_staff
