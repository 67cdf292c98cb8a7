"""The customers' desk: search, and a customer's page with balance, ledger, orders, payments,
tickets, API keys and the staff's history on the account.

Every desk member may read it; changing the account (balance, discount, custom rates,
suspension, keys) takes the balances permission. Changes go through desk/accounts.py, each
with its audit row. Only customers are here: staff and admin accounts are a 404, so the desk
cannot be used to adjust or suspend a colleague.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from desk import accounts
from desk.access import desk_view
from desk.models import AuditEntry
from orders import pricing
from orders.models import CustomRate, Order, Service
from orders.params import parse_id
from panel import ledger
from panel.models import ApiKey, LedgerEntry, User
from panel.money import MONEY_DIGITS, MONEY_PLACES
from panel.templatetags.panel_money import money
from payments.models import Payment
from providers.models import RATE_PLACES
from support.models import Ticket

PER_PAGE = 50
LATEST = 20  # rows of each list on a customer's page
REASON = forms.CharField(label=gettext_lazy("Reason"), max_length=500)
# The staff history's words for the actions of desk/accounts.py and desk/tickets.py; other
# areas' actions show as they were recorded.
ACTION_TEXT = {
    "balance_adjusted": gettext_lazy("adjusted the balance"),
    "discount_set": gettext_lazy("set the discount"),
    "custom_rate_set": gettext_lazy("set a custom rate"),
    "custom_rate_removed": gettext_lazy("removed a custom rate"),
    "customer_suspended": gettext_lazy("suspended the account"),
    "customer_reinstated": gettext_lazy("reinstated the account"),
    "api_key_revoked": gettext_lazy("revoked an API key"),
    "ticket_answered": gettext_lazy("answered a ticket"),
    "ticket_note": gettext_lazy("added a note to a ticket"),
    "ticket_closed": gettext_lazy("closed a ticket"),
    "ticket_reopened": gettext_lazy("reopened a ticket"),
    "ticket_refill": gettext_lazy("asked for a refill from a ticket"),
    "ticket_cancel": gettext_lazy("asked for a cancel from a ticket"),
    "payment_approved": gettext_lazy("approved a payment"),
    "payment_rejected": gettext_lazy("rejected a payment"),
    "payment_flag_settled": gettext_lazy("settled a flagged payment"),
}


def _staff(request: HttpRequest) -> User:
    return cast(User, request.user)


def customers_only() -> QuerySet[User]:
    return User.objects.filter(is_staff=False, is_superuser=False)


def _get_customer(pk: int) -> User:
    customer = customers_only().filter(pk=pk).first()
    if customer is None:
        raise Http404
    return customer


class AdjustForm(forms.Form):
    amount = forms.DecimalField(
        label=gettext_lazy("Amount"), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
        help_text=gettext_lazy("Positive adds to the balance, negative takes from it."))
    reason = REASON

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError(_("An adjustment of zero changes nothing."))
        return amount


class DiscountForm(forms.Form):
    percent = forms.DecimalField(label=gettext_lazy("Discount, percent"), min_value=0,
                                 max_value=100, max_digits=5, decimal_places=2)
    reason = REASON


class CustomRateForm(forms.Form):
    service = forms.IntegerField(label=gettext_lazy("Service ID"), min_value=1)
    rate = forms.DecimalField(label=gettext_lazy("Rate per 1000"), min_value=Decimal("0.000001"),
                              max_digits=MONEY_DIGITS, decimal_places=RATE_PLACES)
    reason = REASON

    def clean_service(self) -> Service:
        service = Service.objects.filter(pk=self.cleaned_data["service"]).first()
        if service is None:
            raise forms.ValidationError(_("No service with this id."))
        return service


class ReasonForm(forms.Form):
    reason = REASON


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500, required=False)


# --- the list ------------------------------------------------------------------------------

def _search(listed: QuerySet[User], query: str) -> QuerySet[User]:
    by_id = parse_id(query.lstrip("#"))
    return listed.filter(Q(username__icontains=query) | Q(email__icontains=query)
                         | Q(pk=by_id or 0))


@desk_view(None)
def customers(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    listed = customers_only()
    if query:
        listed = _search(listed, query)
    if status in ("active", "suspended"):
        listed = listed.filter(is_active=status == "active")
    # Counts as subqueries: two Count() joins would multiply each other's rows.
    order_count = (Order.objects.filter(user=OuterRef("pk"), parent__isnull=True)
                   .order_by().values("user").annotate(n=Count("pk")).values("n"))
    open_tickets = (Ticket.objects.filter(user=OuterRef("pk")).exclude(state="closed")
                    .order_by().values("user").annotate(n=Count("pk")).values("n"))
    listed = listed.annotate(order_count=Subquery(order_count),
                             open_tickets=Subquery(open_tickets)).order_by("-date_joined", "-pk")
    page = Paginator(listed, PER_PAGE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "desk/customers/list.html", {
        "page": page, "query": query, "status": status, "page_query": params.urlencode()})


# --- one customer --------------------------------------------------------------------------

def customer_payments(customer: User) -> list[Payment]:
    """The customer's latest payments, newest first, in one query."""
    return list(Payment.objects.filter(user=customer).select_related("method")[:LATEST])


def _custom_rate_rows(customer: User) -> list[dict[str, Any]]:
    rates = list(CustomRate.objects.filter(user=customer).order_by("service_id"))
    services = {s.pk: s for s in Service.objects.with_routes().filter(
        pk__in=[r.service_id for r in rates])}
    custom = {r.service_id: r.rate for r in rates}
    rows = []
    for rate in rates:
        service = services[rate.service_id]
        rows.append({"custom": rate, "service": service, "listed": pricing.base_rate(service),
                     "charged": pricing.customer_rate(service, customer, custom)})
    return rows


def _customer_context(customer: User) -> dict[str, Any]:
    orders = Order.objects.for_customer(customer.pk)
    return {
        "customer": customer,
        "ledger": list(LedgerEntry.objects.filter(user=customer).select_related("actor")
                       [:LATEST]),
        "ledger_count": LedgerEntry.objects.filter(user=customer).count(),
        "orders": list(orders.select_related("service").order_by("-created_at", "-pk")[:LATEST]),
        "order_count": orders.count(),
        "payments": customer_payments(customer),
        "tickets": list(Ticket.objects.for_customer(customer.pk)[:LATEST]),
        "keys": list(ApiKey.objects.filter(user=customer)),
        "rates": _custom_rate_rows(customer),
        "history": [{"entry": a, "text": ACTION_TEXT.get(a.action, a.action)}
                    for a in AuditEntry.objects.filter(customer=customer)
                    .select_related("actor")[:LATEST]],
        "adjust_form": AdjustForm(prefix="adjust"),
        "discount_form": DiscountForm(prefix="discount",
                                      initial={"percent": customer.discount_percent}),
        "rate_form": CustomRateForm(prefix="rate"),
        "suspend_form": ReasonForm(prefix="suspend"),
        "key_form": OptionalReasonForm(prefix="key"),
    }


@desk_view(None)
def customer(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "desk/customers/customer.html", _customer_context(_get_customer(pk)))


def _refused(request: HttpRequest, customer: User, form: forms.Form, name: str) -> HttpResponse:
    """The page again with the refused form beside its fields (status 400)."""
    context = _customer_context(customer)
    context[name] = form
    messages.error(request, _("Nothing changed: see the form below."))
    return render(request, "desk/customers/customer.html", context, status=400)


@desk_view("balances")
@require_POST
def customer_adjust(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_customer(pk)
    form = AdjustForm(request.POST, prefix="adjust")
    if not form.is_valid():
        return _refused(request, customer, form, "adjust_form")
    try:
        entry = accounts.adjust_balance(_staff(request), customer, form.cleaned_data["amount"],
                                        form.cleaned_data["reason"])
    except ledger.InsufficientFunds:
        form.add_error("amount", _("The balance does not cover this deduction."))
        return _refused(request, customer, form, "adjust_form")
    messages.success(request, _("Balance adjusted by %(amount)s; it is now %(balance)s.") % {
        "amount": money(entry.amount), "balance": money(entry.balance_after)})
    return redirect("desk:customer", pk=customer.pk)


@desk_view("balances")
@require_POST
def customer_discount(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_customer(pk)
    form = DiscountForm(request.POST, prefix="discount")
    if not form.is_valid():
        return _refused(request, customer, form, "discount_form")
    accounts.set_discount(_staff(request), customer, form.cleaned_data["percent"],
                          form.cleaned_data["reason"])
    messages.success(request, _("Discount set to %(percent)s%%.") % {
        "percent": form.cleaned_data["percent"]})
    return redirect("desk:customer", pk=customer.pk)


@desk_view("balances")
@require_POST
def customer_rate(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_customer(pk)
    form = CustomRateForm(request.POST, prefix="rate")
    if not form.is_valid():
        return _refused(request, customer, form, "rate_form")
    service = form.cleaned_data["service"]
    accounts.set_custom_rate(_staff(request), customer, service, form.cleaned_data["rate"],
                             form.cleaned_data["reason"])
    messages.success(request, _("Custom rate for service %(id)s saved.") % {"id": service.pk})
    return redirect("desk:customer", pk=customer.pk)


@desk_view("balances")
@require_POST
def customer_rate_remove(request: HttpRequest, pk: int, rate_pk: int) -> HttpResponse:
    customer = _get_customer(pk)
    custom = CustomRate.objects.filter(pk=rate_pk, user=customer).first()
    if custom is None:
        raise Http404
    form = OptionalReasonForm(request.POST, prefix="key")
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    accounts.remove_custom_rate(_staff(request), customer, custom, reason)
    messages.success(request, _("Custom rate for service %(id)s removed.") % {
        "id": custom.service_id})
    return redirect("desk:customer", pk=customer.pk)


@desk_view("balances")
@require_POST
def customer_suspend(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_customer(pk)
    form = ReasonForm(request.POST, prefix="suspend")
    if not form.is_valid():
        return _refused(request, customer, form, "suspend_form")
    reason = form.cleaned_data["reason"]
    if request.POST.get("reinstate"):
        if accounts.reinstate(_staff(request), customer, reason):
            messages.success(request, _("%(name)s is reinstated.") % {"name": customer})
    elif accounts.suspend(_staff(request), customer, reason):
        messages.success(request, _("%(name)s is suspended: logins and API keys are refused.")
                         % {"name": customer})
    return redirect("desk:customer", pk=customer.pk)


@desk_view("balances")
@require_POST
def customer_key_revoke(request: HttpRequest, pk: int, key_pk: int) -> HttpResponse:
    customer = _get_customer(pk)
    key = ApiKey.objects.filter(pk=key_pk, user=customer).first()
    if key is None:
        raise Http404
    form = OptionalReasonForm(request.POST, prefix="key")
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    if accounts.revoke_key(_staff(request), key, reason):
        messages.success(request, _("Key %(prefix)s… revoked.") % {"prefix": key.prefix})
    return redirect("desk:customer", pk=customer.pk)
