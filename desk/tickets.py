"""Staff actions on tickets, each one transaction with its audit row (desk.models.audit):
answer, internal note, close and reopen, bulk marks, and the Order ticket's one action that
asks for the refill or cancel of its orders (support/handling.py)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from desk.models import audit
from panel.models import User
from support import handling
from support.models import Ticket, TicketMessage


def _customer(ticket: Ticket) -> User:
    return User(pk=ticket.user_id)


def answer(actor: User, ticket: Ticket, body: str, url: str) -> TicketMessage:
    with transaction.atomic():
        message = handling.answer(ticket, actor.pk, body, url)
        audit(actor, "ticket_answered", customer=_customer(ticket), ticket=ticket.pk,
              message=message.pk)
    return message


def add_note(actor: User, ticket: Ticket, body: str) -> TicketMessage:
    with transaction.atomic():
        message = ticket.add_note(actor.pk, body)
        audit(actor, "ticket_note", customer=_customer(ticket), ticket=ticket.pk,
              message=message.pk)
    return message


def close(actor: User, ticket: Ticket) -> bool:
    with transaction.atomic():
        if not ticket.close():
            return False
        audit(actor, "ticket_closed", customer=_customer(ticket), ticket=ticket.pk)
    return True


def reopen(actor: User, ticket: Ticket) -> bool:
    with transaction.atomic():
        if not ticket.reopen():
            return False
        audit(actor, "ticket_reopened", customer=_customer(ticket), ticket=ticket.pk)
    return True


def ask_for_orders(actor: User, ticket: Ticket, action: str, note: str, url: str
                   ) -> list[handling.OrderOutcome]:
    """The refill or cancel of every order of an Order ticket, the answer saying how each
    went, and one audit row per order (it shows in that order's history too)."""
    with transaction.atomic():
        _message, outcomes = handling.ask_for_orders(ticket, actor.pk, action, note, url)
        orders = {o.pk: o for o in ticket.user.orders.filter(
            pk__in=[x.order_id for x in outcomes])}
        for outcome in outcomes:
            audit(actor, f"ticket_{action}", outcome.text, order=orders.get(outcome.order_id),
                  customer=_customer(ticket), ticket=ticket.pk, done=outcome.done)
    return outcomes


# What the inbox's bulk action can do to a selection.
BULK_MARKS: dict[str, dict[str, object]] = {
    "read": {"unread_by_staff": False},
    "unread": {"unread_by_staff": True},
    "closed": {"state": Ticket.State.CLOSED},
}


def bulk_mark(actor: User, ticket_ids: list[int], mark: str) -> int:
    """Mark the selected tickets read, unread or closed; one audit row per ticket changed."""
    fields: dict[str, object] = dict(BULK_MARKS[mark])
    with transaction.atomic():
        tickets = list(Ticket.objects.select_for_update().filter(pk__in=ticket_ids)
                       .exclude(**fields).values_list("pk", "user_id"))
        if mark == "closed":
            fields["closed_at"] = timezone.now()
        Ticket.objects.filter(pk__in=[pk for pk, _ in tickets]).update(**fields)
        for pk, user_id in tickets:
            audit(actor, f"ticket_marked_{mark}", customer=User(pk=user_id), ticket=pk)
    return len(tickets)
