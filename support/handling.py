"""What staff do with a ticket: answer it (the customer is mailed), and for an Order ticket,
ask for the refill or cancel of its orders through the same workflows as the customer's
buttons, answering the ticket with the outcome per order.

Callers (the staff desk) run these inside their transaction together with the audit row;
the mail and the refill and cancel kicks go out once it commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from orders import cancels, refills
from orders.errors import Refusal
from orders.models import Order
from orders.views.history import cancel_reason, refill_reason
from support.mail import mail_staff_reply
from support.models import Ticket, TicketMessage

# The requests staff can carry out from the ticket in one action.
ACTIONS = (Ticket.Request.REFILL, Ticket.Request.CANCEL)


@dataclass
class OrderOutcome:
    order_id: int
    done: bool
    text: str


def answer(ticket: Ticket, actor_id: int, body: str, url: str) -> TicketMessage:
    """A staff reply: the ticket is answered and its customer mailed on commit."""
    message = ticket.staff_reply(actor_id, body)
    transaction.on_commit(lambda: mail_staff_reply(ticket, message, url), robust=True)
    return message


def ask_for_orders(ticket: Ticket, actor_id: int, action: str, note: str, url: str
                   ) -> tuple[TicketMessage, list[OrderOutcome]]:
    """Ask for the refill (or cancel) of every order the ticket lists, as its customer would
    from each order's page, and answer the ticket with what came of each."""
    if ticket.subject != Ticket.Subject.ORDER or action not in ACTIONS:
        raise ValueError(f"ticket #{ticket.pk} has no orders to {action}")
    ask = _refill if action == Ticket.Request.REFILL else _cancel
    outcomes = [ask(ticket, order_id, actor_id) for order_id in ticket.order_ids]
    heading = (_("We asked for a refill of the orders of this ticket:")
               if action == Ticket.Request.REFILL
               else _("We asked to cancel the orders of this ticket:"))
    lines = [note.strip(), heading] if note.strip() else [heading]
    lines += [f"- {o.text}" for o in outcomes]
    return answer(ticket, actor_id, "\n".join(lines), url), outcomes


def _own_order(ticket: Ticket, order_id: int) -> Order | None:
    return Order.objects.for_customer(ticket.user_id).find(order_id)


def _refill(ticket: Ticket, order_id: int, actor_id: int) -> OrderOutcome:
    order = _own_order(ticket, order_id)
    if order is None:
        return OrderOutcome(order_id, False, _("Order %(id)s: not found.") % {"id": order_id})
    try:
        refill = refills.request_refill(ticket.user, order.pk)
    except Refusal:
        reason = refill_reason(order, refills.refill_obstacle(order))
        return OrderOutcome(order.pk, False, _("Order %(id)s: not refilled. %(why)s") % {
            "id": order.pk, "why": reason or _("It cannot be refilled now.")})
    order.log("ticket", f"refill #{refill.pk} asked from ticket #{ticket.pk}", actor_id)
    return OrderOutcome(order.pk, True, _("Order %(id)s: refill %(refill)s requested.") % {
        "id": order.pk, "refill": refill.pk})


def _cancel(ticket: Ticket, order_id: int, actor_id: int) -> OrderOutcome:
    order = _own_order(ticket, order_id)
    if order is None:
        return OrderOutcome(order_id, False, _("Order %(id)s: not found.") % {"id": order_id})
    try:
        cancels.request_cancel(ticket.user, order.pk)
    except Refusal:
        order.refresh_from_db()
        reason = cancel_reason(cancels.cancel_obstacle(order))
        return OrderOutcome(order.pk, False, _("Order %(id)s: not canceled. %(why)s") % {
            "id": order.pk, "why": reason or _("It cannot be canceled now.")})
    order.log("ticket", f"cancel asked from ticket #{ticket.pk}", actor_id)
    order.refresh_from_db()
    text = (_("Order %(id)s: canceled and refunded.") if order.is_terminal
            else _("Order %(id)s: cancel requested; the refund follows once it is canceled."))
    return OrderOutcome(order.pk, True, text % {"id": order.pk})
