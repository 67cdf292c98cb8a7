"""The staff side of tickets at /staff/tickets/: the inbox by state, subject and unread;
reply (the customer is mailed), internal notes, close and reopen, bulk marks; the Order
ticket's action that asks for the refill or cancel of its orders through the customer's
workflows, against the sandbox over HTTP. Every action leaves its audit row; a member
without the tickets area gets 403, a customer 404; the inbox takes a constant number of
queries."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from desk.models import AuditEntry
from orders import dispatch, polling, refills
from orders.models import Order, OrderEvent, Refill
from orders.placing import place_order
from panel.ledger import mismatched_balances
from support.models import Ticket, TicketMessage
from tests.conftest import make_service, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(db):
    return make_staff("sam")  # the Staff group: orders, refills and cancels, tickets


@pytest.fixture
def desk(client, support):
    client.force_login(support)
    return client


@pytest.fixture
def service(catalog, sandbox):
    sandbox.set_speed(600)  # orders stay where the upstream is told to put them
    return make_service(catalog, "Default", refill=True, cancel=True,
                        upstream={"refill": True, "cancel": True})


def place(service, user, n=0):
    return place_order(user, service.pk, {"link": f"https://instagram.com/p/d{user.pk}-{n}",
                                          "quantity": service.min_quantity})


def completed(service, sandbox, user, n=0):
    order = place(service, user, n)
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    sandbox.force_order(order.upstream_id, status="Completed")
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
    polling.poll_orders()
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    return order


def test_the_inbox_filters_by_state_subject_and_unread(desk, alice, bob, support):
    asked = Ticket.open(alice.pk, "Refill please", subject="order", request="refill",
                        order_ids=[987654])
    paid = Ticket.open(bob.pk, "Where is my deposit", subject="payment", transaction_id="T1")
    answered = Ticket.open(bob.pk, "Which service?", subject="service")
    answered.staff_reply(support.pk, "This one")
    Ticket.objects.filter(pk=answered.pk).update(unread_by_staff=False)

    def listed(**params):
        html = desk.get(reverse("desk:tickets"), params).content.decode()
        return {t.pk for t in (asked, paid, answered)
                if reverse("desk:ticket", args=[t.pk]) in html}

    assert listed() == {asked.pk, paid.pk}  # open is the inbox's default
    assert listed(state="answered") == {answered.pk}
    assert listed(state="all") == {asked.pk, paid.pk, answered.pk}
    assert listed(state="all", subject="payment") == {paid.pk}
    assert listed(state="all", unread="1") == {asked.pk, paid.pk}
    assert "Refill please" in desk.get(reverse("desk:tickets")).content.decode()
    assert listed(state="all", q="bob") == {paid.pk, answered.pk}
    assert listed(state="all", q=f"#{paid.pk}") == {paid.pk}
    assert listed(state="all", q="987654") == {asked.pk}  # the order id it lists
    searched = desk.get(reverse("desk:tickets"), {"q": "bob"}).content.decode()
    assert 'value="bob"' in searched and "q=bob" in searched  # kept in the box and the tabs


def test_the_inbox_takes_the_same_queries_for_one_ticket_or_many(desk, alice, bob):
    Ticket.open(alice.pk, "one", subject="other")
    desk.get(reverse("desk:tickets"))  # sessions, permissions and the like warm up
    with CaptureQueriesContext(connection) as one:
        desk.get(reverse("desk:tickets"))
    for n in range(20):
        ticket = Ticket.open((alice if n % 2 else bob).pk, f"message {n}", subject="service")
        ticket.customer_reply("and more")
    with CaptureQueriesContext(connection) as many:
        html = desk.get(reverse("desk:tickets")).content.decode()
    assert len(many) == len(one), [q["sql"] for q in many.captured_queries]
    assert html.count("and more") == 20


def test_alerts_list_unread_tickets_until_staff_open_them(desk, alice):
    def alert_titles():
        return [a.title for a in desk.get(reverse("desk:alerts")).context["alerts"]]

    assert alert_titles() == []
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    Ticket.open(alice.pk, "Hello again", subject="other")
    assert alert_titles() == ["2 tickets waiting to be read"]
    desk.get(reverse("desk:ticket", args=[ticket.pk]))
    assert alert_titles() == ["1 ticket waiting to be read"]


def test_opening_a_ticket_reads_it_and_shows_the_notes(desk, alice, support):
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    ticket.add_note(support.pk, "Known customer, be quick")
    html = desk.get(reverse("desk:ticket", args=[ticket.pk])).content.decode()
    assert "Known customer, be quick" in html and "Internal note" in html
    ticket.refresh_from_db()
    assert not ticket.unread_by_staff


def test_a_reply_answers_the_ticket_mails_the_customer_and_is_audited(
        desk, alice, support, django_capture_on_commit_callbacks):
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post(reverse("desk:ticket_reply", args=[ticket.pk]),
                             {"reply-message": "We are on it."})
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.state == "answered"
    reply = ticket.messages.get(by_staff=True)
    assert (reply.body, reply.internal, reply.author_id) == ("We are on it.", False, support.pk)
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["alice@example.com"] and f"#{ticket.pk}" in sent.subject
    assert "We are on it." in sent.body
    assert f"/tickets/{ticket.pk}/" in sent.body and "/staff/" not in sent.body
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.customer_id) == (support, "ticket_answered",
                                                               alice.pk)
    assert entry.details["ticket"] == ticket.pk


def test_an_internal_note_stays_internal(desk, client, alice, support,
                                         django_capture_on_commit_callbacks):
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    with django_capture_on_commit_callbacks(execute=True):
        desk.post(reverse("desk:ticket_note", args=[ticket.pk]),
                  {"note-message": "Check the upstream first"})
    ticket.refresh_from_db()
    assert ticket.state == "open" and not mail.outbox
    assert ticket.messages.get(internal=True).body == "Check the upstream first"
    assert AuditEntry.objects.get().action == "ticket_note"
    client.force_login(alice)
    assert "Check the upstream" not in client.get(
        reverse("ticket_detail", args=[ticket.pk])).content.decode()


def test_an_empty_reply_changes_nothing(desk, alice):
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    desk.post(reverse("desk:ticket_reply", args=[ticket.pk]), {"reply-message": ""})
    assert ticket.messages.count() == 1 and not AuditEntry.objects.exists()


def test_close_and_reopen_are_audited(desk, alice):
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    desk.post(reverse("desk:ticket_close", args=[ticket.pk]))
    ticket.refresh_from_db()
    assert ticket.state == "closed"
    desk.post(reverse("desk:ticket_close", args=[ticket.pk]))  # already: nothing more
    desk.post(reverse("desk:ticket_close", args=[ticket.pk]), {"reopen": "1"})
    ticket.refresh_from_db()
    assert ticket.state == "open"
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "ticket_closed", "ticket_reopened"]


def test_bulk_marks_change_the_selection_only(desk, alice, bob):
    a, b, c = (Ticket.open(u.pk, "x", subject="other") for u in (alice, bob, alice))
    response = desk.post(reverse("desk:tickets_mark"),
                         {"ticket": [a.pk, b.pk], "mark": "read", "next": "/staff/tickets/"})
    assert response.status_code == 302 and response["Location"] == "/staff/tickets/"
    assert set(Ticket.objects.filter(unread_by_staff=True).values_list("pk", flat=True)) == {
        c.pk}
    desk.post(reverse("desk:tickets_mark"), {"ticket": [b.pk, c.pk], "mark": "closed"})
    assert set(Ticket.objects.filter(state="closed").values_list("pk", flat=True)) == {b.pk,
                                                                                     c.pk}
    assert sorted(AuditEntry.objects.values_list("action", "details__ticket")) == sorted([
        ("ticket_marked_read", a.pk), ("ticket_marked_read", b.pk),
        ("ticket_marked_closed", b.pk), ("ticket_marked_closed", c.pk)])
    # Somewhere else than the desk is not where the form sends anybody back.
    response = desk.post(reverse("desk:tickets_mark"),
                         {"ticket": [a.pk], "mark": "unread", "next": "https://example.com/"})
    assert response["Location"] == reverse("desk:tickets")


def test_an_order_ticket_refills_its_orders_and_answers_with_each_result(
        desk, alice, support, service, sandbox, django_capture_on_commit_callbacks):
    done = completed(service, sandbox, alice, 1)
    running = place(service, alice, 2)  # not completed: no refill yet
    ticket = Ticket.open(alice.pk, "They dropped", subject="order", request="refill",
                         order_ids=[done.pk, running.pk])
    html = desk.get(reverse("desk:ticket", args=[ticket.pk])).content.decode()
    assert "Refill the orders and answer" in html
    assert "Refill is available once the order is completed." in html

    with django_capture_on_commit_callbacks(execute=True):
        desk.post(reverse("desk:ticket_orders", args=[ticket.pk]),
                  {"action": "refill", "note": "Thanks for waiting."})

    refill = Refill.objects.get()
    assert refill.order_id == done.pk and refill.user_id == alice.pk
    ticket.refresh_from_db()
    assert ticket.state == "answered"
    answer = ticket.messages.get(by_staff=True).body
    assert answer.startswith("Thanks for waiting.")
    assert f"Order {done.pk}: refill {refill.pk} requested." in answer
    assert (f"Order {running.pk}: not refilled. Refill is available once the order is "
            "completed.") in answer
    assert len(mail.outbox) == 1 and f"refill {refill.pk} requested" in mail.outbox[0].body
    audited = {e.order_id: e for e in AuditEntry.objects.filter(action="ticket_refill")}
    assert set(audited) == {done.pk, running.pk}
    assert audited[done.pk].details["done"] is True and audited[running.pk].actor == support
    assert OrderEvent.objects.filter(order=done, kind="ticket", actor=support).exists()

    # The refill goes upstream and comes back done, as the customer's button's would.
    sandbox.set_speed(0)  # the upstream refills at once
    assert refills.send_refills() == 1
    refill.refresh_from_db()
    assert refill.status == Refill.Status.PENDING and refill.upstream_id
    Refill.objects.filter(pk=refill.pk).update(next_check_at=timezone.now())
    polling.poll_refills()
    refill.refresh_from_db()
    assert refill.status == Refill.Status.COMPLETED
    assert mismatched_balances() == []


def test_an_order_ticket_cancels_a_queued_order_with_its_refund(desk, alice, service):
    order = place(service, alice, 3)
    ticket = Ticket.open(alice.pk, "Cancel it", subject="order", request="cancel",
                         order_ids=[order.pk])
    desk.post(reverse("desk:ticket_orders", args=[ticket.pk]), {"action": "cancel"})
    order.refresh_from_db()
    alice.refresh_from_db()
    assert order.status == Order.Status.CANCELED and alice.balance == 100
    assert f"Order {order.pk}: canceled and refunded." in ticket.messages.get(
        by_staff=True).body
    assert AuditEntry.objects.get(action="ticket_cancel").order_id == order.pk
    assert mismatched_balances() == []


def test_the_order_action_only_acts_on_the_customers_own_orders(desk, alice, bob, service):
    """A ticket's ids were checked when it was opened; the action checks them again."""
    bobs = place(service, bob, 4)
    ticket = Ticket.open(alice.pk, "x", subject="order", request="cancel", order_ids=[bobs.pk])
    desk.post(reverse("desk:ticket_orders", args=[ticket.pk]), {"action": "cancel"})
    bobs.refresh_from_db()
    assert bobs.status == Order.Status.QUEUED
    assert f"Order {bobs.pk}: not found." in ticket.messages.get(by_staff=True).body


def test_a_member_without_the_tickets_area_gets_403(client, alice):
    from django.contrib.auth.models import Permission

    other = make_staff("olga")
    other.groups.first().permissions.remove(
        Permission.objects.get(content_type__app_label="desk", codename="tickets"))
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    client.force_login(other)
    assert client.get(reverse("desk:tickets")).status_code == 403
    assert client.get(reverse("desk:ticket", args=[ticket.pk])).status_code == 403
    assert client.post(reverse("desk:ticket_reply", args=[ticket.pk]),
                       {"reply-message": "hi"}).status_code == 403
    assert TicketMessage.objects.count() == 1 and not AuditEntry.objects.exists()


def test_a_customer_gets_404_on_the_ticket_desk(client, alice):
    ticket = Ticket.open(alice.pk, "Hello", subject="other")
    client.force_login(alice)
    for name in ("desk:ticket", "desk:ticket_reply", "desk:ticket_note", "desk:ticket_close",
                 "desk:ticket_orders"):
        assert client.post(reverse(name, args=[ticket.pk]),
                           {"reply-message": "x"}).status_code == 404
    assert client.get(reverse("desk:tickets")).status_code == 404
    assert TicketMessage.objects.count() == 1
