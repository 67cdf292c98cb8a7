"""The customer's tickets through the test client: a new ticket of every subject, order ids
that must be the customer's own, the thread without staff's internal notes, replies, closing,
owner-only 404s and a list in a constant number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.placing import place_order
from support.models import MAX_ORDER_IDS, Ticket, TicketMessage
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(catalog):
    return make_service(catalog, "Default", refill=True, upstream={"refill": True})


def place(service, user, n: int = 0):
    return place_order(user, service.pk, {"link": f"https://instagram.com/p/t{user.pk}-{n}",
                                          "quantity": service.min_quantity})


def new_ticket(client, **fields):
    data = {"subject": "other", "message": "Hello there", **fields}
    return client.post(reverse("ticket_new"), data)


def test_an_order_ticket_names_the_customers_own_orders(client, alice, service):
    first, second = place(service, alice, 1), place(service, alice, 2)
    client.force_login(alice)
    response = new_ticket(client, subject="order", request="refill",
                          order_ids=f"{first.pk}, #{second.pk} {first.pk}",
                          message="They dropped", payment_method="ignored")
    ticket = Ticket.objects.get(user=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("ticket_detail", args=[ticket.pk])
    assert (ticket.subject, ticket.request, ticket.order_ids) == ("order", "refill",
                                                                  [first.pk, second.pk])
    assert ticket.payment_method == ""  # not an Order ticket's field
    assert ticket.state == "open" and ticket.unread_by_staff
    assert [m.body for m in ticket.messages.all()] == ["They dropped"]
    page = client.get(response["Location"]).content.decode()
    assert "Order: Refill" in page
    assert reverse("order_detail", args=[first.pk]) in page


def test_another_customers_order_reads_as_one_that_does_not_exist(client, alice, bob, service):
    bobs = place(service, bob)
    client.force_login(alice)
    response = new_ticket(client, subject="order", request="cancel", order_ids=str(bobs.pk))
    assert response.status_code == 200
    assert f"You have no order {bobs.pk}." in response.content.decode()
    assert not Ticket.objects.exists()


@pytest.mark.parametrize("order_ids, error", [
    ("", "Give the id of at least one of your orders."),
    ("12, abc", "Order ids are whole numbers"),
    (", ".join(str(n) for n in range(1, MAX_ORDER_IDS + 2)), "At most 10 orders per ticket."),
])
def test_an_order_ticket_is_refused_beside_its_field(client, alice, order_ids, error):
    client.force_login(alice)
    response = new_ticket(client, subject="order", request="refill", order_ids=order_ids)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Ticket.objects.exists()


def test_an_order_ticket_says_what_it_asks_for(client, alice, service):
    order = place(service, alice)
    client.force_login(alice)
    response = new_ticket(client, subject="order", order_ids=str(order.pk))
    assert "Choose what you ask for these orders." in response.content.decode()


def test_a_payment_ticket_needs_its_transaction_id(client, alice):
    client.force_login(alice)
    refused = new_ticket(client, subject="payment", payment_method="Bank transfer")
    assert "transaction id" in refused.content.decode()
    new_ticket(client, subject="payment", payment_method="Bank transfer",
               transaction_id="TX-991", order_ids="5", request="refill")
    ticket = Ticket.objects.get()
    assert (ticket.payment_method, ticket.transaction_id) == ("Bank transfer", "TX-991")
    assert (ticket.request, ticket.order_ids) == ("", [])


@pytest.mark.parametrize("subject", ["service", "other"])
def test_service_and_other_tickets_need_only_a_message(client, alice, subject):
    client.force_login(alice)
    assert new_ticket(client, subject=subject).status_code == 302
    assert new_ticket(client, subject=subject, message="").status_code == 200
    assert Ticket.objects.get().subject == subject


def test_the_thread_never_shows_internal_notes_or_staff_names(client, alice, staff_member):
    ticket = Ticket.open(alice.pk, "Where is my order?", subject="other")
    ticket.add_note(staff_member.pk, "NOTE: customer asked twice before")
    ticket.staff_reply(staff_member.pk, "It is on its way.")
    client.force_login(alice)
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert "It is on its way." in page and "Where is my order?" in page
    assert "NOTE" not in page
    assert staff_member.username not in page
    assert "Support" in page


def test_a_reply_reopens_an_answered_ticket_for_staff(client, alice, staff_member):
    ticket = Ticket.open(alice.pk, "Question", subject="service")
    ticket.staff_reply(staff_member.pk, "Answer")
    Ticket.objects.filter(pk=ticket.pk).update(unread_by_staff=False)
    client.force_login(alice)
    response = client.post(reverse("ticket_detail", args=[ticket.pk]), {"message": "Thanks, "
                                                                         "but…"})
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.state == "open" and ticket.unread_by_staff
    assert ticket.messages.count() == 3


def test_a_closed_ticket_takes_no_reply(client, alice):
    ticket = Ticket.open(alice.pk, "Question", subject="other")
    client.force_login(alice)
    assert client.post(reverse("ticket_close", args=[ticket.pk])).status_code == 302
    ticket.refresh_from_db()
    assert ticket.state == "closed" and ticket.closed_at is not None
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert "This ticket is closed." in page and "Send reply" not in page
    client.post(reverse("ticket_detail", args=[ticket.pk]), {"message": "again"})
    assert ticket.messages.count() == 1


def test_another_customers_ticket_is_404(client, alice, bob):
    ticket = Ticket.open(bob.pk, "Private", subject="other")
    client.force_login(alice)
    assert client.get(reverse("ticket_detail", args=[ticket.pk])).status_code == 404
    assert client.post(reverse("ticket_detail", args=[ticket.pk]),
                       {"message": "hi"}).status_code == 404
    assert client.post(reverse("ticket_close", args=[ticket.pk])).status_code == 404
    assert Ticket.objects.get().state == "open" and TicketMessage.objects.count() == 1
    assert "Private" not in client.get(reverse("tickets")).content.decode()


def test_tickets_need_a_login(client):
    response = client.get(reverse("tickets"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_ticket_list_takes_the_same_queries_for_one_ticket_or_many(client, alice):
    client.force_login(alice)
    Ticket.open(alice.pk, "first", subject="other")
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("tickets"))
    for n in range(15):
        Ticket.open(alice.pk, f"more {n}", subject="service")
    with CaptureQueriesContext(connection) as many:
        page = client.get(reverse("tickets")).content.decode()
    assert len(many) == len(one)
    assert page.count("Service</a>") == 15


def test_the_order_page_asks_support_about_that_order(client, alice, service):
    order = place(service, alice)
    client.force_login(alice)
    page = client.get(reverse("ticket_new"), {"order": order.pk}).content.decode()
    assert f'value="{order.pk}"' in page
