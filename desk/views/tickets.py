"""Support tickets, the staff side: the inbox (by state, subject and unread, with bulk marks)
and a ticket's page (the whole thread with internal notes, reply, note, close, and the Order
ticket's action). Changes go through desk/tickets.py, each with its audit row."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from desk import tickets as actions
from desk.access import desk_view
from orders import cancels, refills
from orders.models import Order, Refill
from orders.params import parse_id
from orders.views.history import cancel_reason, refill_reason
from panel.models import User
from support.forms import MESSAGE_MAX
from support.handling import ACTIONS
from support.models import Ticket, TicketMessage

PER_PAGE = 50
STATE_TABS = [("open", gettext_lazy("Open")), ("answered", gettext_lazy("Answered")),
              ("closed", gettext_lazy("Closed")), ("all", gettext_lazy("All"))]


class MessageForm(forms.Form):
    message = forms.CharField(label=gettext_lazy("Message"), max_length=MESSAGE_MAX,
                              widget=forms.Textarea(attrs={"rows": 4}))


class OrdersActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a.value, a.label) for a in ACTIONS])
    note = forms.CharField(label=gettext_lazy("Message before the results"), required=False,
                           max_length=MESSAGE_MAX, widget=forms.Textarea(attrs={"rows": 2}))


def _staff(request: HttpRequest) -> User:
    return cast(User, request.user)


def _customer_url(request: HttpRequest, ticket: Ticket) -> str:
    return request.build_absolute_uri(reverse("ticket_detail", args=[ticket.pk]))


def _inbox_rows(listed: Any) -> Any:
    latest = TicketMessage.objects.filter(ticket=OuterRef("pk")).order_by("-created_at", "-id")
    return listed.select_related("user").annotate(
        message_count=Count("messages"),
        last_body=Subquery(latest.values("body")[:1]),
        last_by_staff=Subquery(latest.values("by_staff")[:1]),
    ).order_by("-unread_by_staff", "-last_message_at", "-id")


@desk_view("tickets")
def tickets(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "open")
    state = state if state in dict(STATE_TABS) else "open"
    subject = request.GET.get("subject", "")
    subject = subject if subject in Ticket.Subject.values else ""
    unread = request.GET.get("unread") == "1"
    query = request.GET.get("q", "").strip()[:100]
    listed = Ticket.objects.all()
    if query:
        by_id = parse_id(query.lstrip("#"))
        listed = listed.filter(Q(pk=by_id or 0) | Q(user__username__icontains=query)
                               | Q(order_ids__contains=[by_id or 0]))
    if subject:
        listed = listed.filter(subject=subject)
    if unread:
        listed = listed.filter(unread_by_staff=True)
    counts = listed.aggregate(all=Count("pk"), **{
        slug: Count("pk", filter=Q(state=slug)) for slug, _label in STATE_TABS[:-1]})
    if state != "all":
        listed = listed.filter(state=state)
    page = Paginator(_inbox_rows(listed), PER_PAGE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "desk/tickets/inbox.html", {
        "page": page, "state": state, "subject": subject, "unread": unread, "query": query,
        "tabs": [{"slug": s, "label": label, "count": counts[s]} for s, label in STATE_TABS],
        "subjects": Ticket.Subject.choices, "marks": actions.BULK_MARKS,
        "page_query": params.urlencode(), "next": request.get_full_path()})


@desk_view("tickets")
@require_POST
def tickets_mark(request: HttpRequest) -> HttpResponse:
    mark = request.POST.get("mark", "")
    ids = [pk for pk in (parse_id(v) for v in request.POST.getlist("ticket")) if pk]
    if mark not in actions.BULK_MARKS or not ids:
        messages.error(request, _("Choose tickets and what to mark them."))
    else:
        changed = actions.bulk_mark(_staff(request), ids, mark)
        messages.success(request, ngettext("%(n)d ticket marked.", "%(n)d tickets marked.",
                                           changed) % {"n": changed})
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/staff/") else "desk:tickets")


def _listed_orders(ticket: Ticket) -> list[dict[str, Any]]:
    """The ticket's orders with what the customer's buttons would say about each now."""
    if not ticket.order_ids:
        return []
    orders = (Order.objects.for_customer(ticket.user_id).filter(pk__in=ticket.order_ids)
              .select_related("service", "route__provider_service", "provider"))
    latest: dict[int, Refill] = {}
    for refill in Refill.objects.filter(order_id__in=ticket.order_ids).order_by("-id"):
        latest.setdefault(refill.order_id, refill)
    active = {pk for pk, refill in latest.items() if refill.status in Refill.ACTIVE}
    rows = []
    for order in sorted(orders, key=lambda o: ticket.order_ids.index(o.pk)):
        refill_block = refills.refill_obstacle(order, active_refill=order.pk in active)
        cancel_block = cancels.cancel_obstacle(order)
        rows.append({"order": order, "latest_refill": latest.get(order.pk),
                     "refill": refill_reason(order, refill_block) if refill_block else "",
                     "cancel": cancel_reason(cancel_block) if cancel_block else ""})
    return rows


@desk_view("tickets")
def ticket(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Ticket.objects.select_related("user"), pk=pk)
    # Opening the ticket is reading it: it leaves the unread filter.
    if found.unread_by_staff:
        Ticket.objects.filter(pk=found.pk).update(unread_by_staff=False)
    thread = list(found.messages.select_related("author"))
    action = found.request if found.request in ACTIONS else ""
    return render(request, "desk/tickets/ticket.html", {
        "ticket": found, "thread": thread, "orders": _listed_orders(found),
        "action": action, "reply_form": MessageForm(prefix="reply"),
        "note_form": MessageForm(prefix="note"),
        "orders_form": OrdersActionForm(initial={"action": action})})


def _posted_message(request: HttpRequest, prefix: str) -> str | None:
    form = MessageForm(request.POST, prefix=prefix)
    if not form.is_valid():
        messages.error(request, _("Write a message first."))
        return None
    return str(form.cleaned_data["message"])


@desk_view("tickets")
@require_POST
def ticket_reply(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Ticket.objects.select_related("user"), pk=pk)
    body = _posted_message(request, "reply")
    if body is not None:
        actions.answer(_staff(request), found, body, _customer_url(request, found))
        messages.success(request, _("Reply sent; the customer is mailed."))
    return redirect("desk:ticket", pk=found.pk)


@desk_view("tickets")
@require_POST
def ticket_note(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Ticket, pk=pk)
    body = _posted_message(request, "note")
    if body is not None:
        actions.add_note(_staff(request), found, body)
        messages.success(request, _("Internal note added."))
    return redirect("desk:ticket", pk=found.pk)


@desk_view("tickets")
@require_POST
def ticket_close(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Ticket, pk=pk)
    if request.POST.get("reopen"):
        done = actions.reopen(_staff(request), found)
        text = _("Ticket reopened.")
    else:
        done = actions.close(_staff(request), found)
        text = _("Ticket closed.")
    if done:
        messages.success(request, text)
    return redirect("desk:ticket", pk=found.pk)


@desk_view("tickets")
@require_POST
def ticket_orders(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Ticket.objects.select_related("user"), pk=pk)
    form = OrdersActionForm(request.POST)
    if found.subject != Ticket.Subject.ORDER or not found.order_ids or not form.is_valid():
        messages.error(request, _("This ticket lists no orders to act on."))
        return redirect("desk:ticket", pk=found.pk)
    outcomes = actions.ask_for_orders(_staff(request), found, form.cleaned_data["action"],
                                      form.cleaned_data["note"], _customer_url(request, found))
    done = sum(o.done for o in outcomes)
    messages.success(request, _("%(done)d of %(all)d orders done; the customer is answered "
                                "with the result of each.") % {"done": done,
                                                               "all": len(outcomes)})
    return redirect("desk:ticket", pk=found.pk)
