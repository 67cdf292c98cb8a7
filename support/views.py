"""The customer's tickets: the list, a new ticket, the thread with its reply form, closing.

Every ticket is fetched through _get_ticket_for_customer, so another customer's ticket is a
404 like one that does not exist; the thread loads only public messages (internal notes stay
on the staff desk) and names staff as "Support".
"""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from orders.models import Order
from panel.models import User
from support.forms import NewTicketForm, ReplyForm
from support.models import Ticket, TicketMessage

PER_PAGE = 25
# Open tickets one customer may have at once: enough for real questions, not a flood.
MAX_OPEN_TICKETS = 20


def _customer(request: HttpRequest) -> User:
    return cast(User, request.user)


def _get_ticket_for_customer(request: HttpRequest, pk: int) -> Ticket:
    ticket = Ticket.objects.for_customer(_customer(request).pk).filter(pk=pk).first()
    if ticket is None:
        raise Http404
    return ticket


def state_badge(ticket: Ticket) -> dict[str, str]:
    return {"text": str(ticket.get_state_display()), "css": f"ticket-{ticket.state}"}


@login_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    listed = Ticket.objects.for_customer(_customer(request).pk).annotate(
        replies=Count("messages", filter=Q(messages__internal=False))
    ).order_by("-last_message_at", "-id")
    page = Paginator(listed, PER_PAGE).get_page(request.GET.get("page"))
    rows = [{"ticket": t, "badge": state_badge(t)} for t in page.object_list]
    return render(request, "support/customer/tickets.html",
                  {"page": page, "rows": rows, "page_query": ""})


@login_required
def ticket_new(request: HttpRequest) -> HttpResponse:
    user = _customer(request)
    initial = {}
    if order_id := request.GET.get("order", "").strip():
        # "Ask support" from an order's page: an Order ticket about that order.
        initial = {"subject": Ticket.Subject.ORDER, "order_ids": order_id}
    form = NewTicketForm(request.POST or None, user_id=user.pk, initial=initial)
    if request.method == "POST" and form.is_valid():
        if Ticket.objects.for_customer(user.pk).exclude(
                state=Ticket.State.CLOSED).count() >= MAX_OPEN_TICKETS:
            form.add_error(None, _("You have %(n)d open tickets: close one that is settled "
                                   "first.") % {"n": MAX_OPEN_TICKETS})
        else:
            ticket = Ticket.open(user.pk, form.cleaned_data["message"], **form.ticket_fields())
            messages.success(request, _("Ticket #%(id)s is sent: we answer here and by "
                                        "email.") % {"id": ticket.pk})
            return redirect("ticket_detail", pk=ticket.pk)
    return render(request, "support/customer/ticket_new.html", {"form": form})


@login_required
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket_for_customer(request, pk)
    form = ReplyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if ticket.customer_reply(form.cleaned_data["message"]) is None:
            messages.error(request, _("This ticket is closed: open a new one."))
        else:
            messages.success(request, _("Your reply is sent."))
        return redirect("ticket_detail", pk=ticket.pk)
    thread = list(TicketMessage.objects.public().filter(ticket=ticket))
    orders = list(Order.objects.for_customer(ticket.user_id).filter(pk__in=ticket.order_ids)
                  .only("pk"))
    return render(request, "support/customer/ticket_detail.html", {
        "ticket": ticket, "badge": state_badge(ticket), "thread": thread, "form": form,
        "order_links": sorted(o.pk for o in orders)})


@login_required
@require_POST
def ticket_close(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket_for_customer(request, pk)
    if ticket.close():
        messages.success(request, _("Ticket #%(id)s is closed.") % {"id": ticket.pk})
    return redirect("ticket_detail", pk=ticket.pk)
