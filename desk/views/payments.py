"""The payments desk (area `desk.payments`): manual payments to approve or reject, flagged
ones to settle, and every payment with its whole event log. Decisions go through
desk/payments.py, each with its audit row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from desk import payments as decisions
from desk.access import desk_view
from orders.params import parse_id
from panel import ledger
from panel.models import User
from panel.money import MONEY_DIGITS, MONEY_PLACES
from panel.templatetags.panel_money import money, money_text
from payments.models import Payment, awaiting_review_q, flagged_q

PER_PAGE = 50
TABS = [("review", gettext_lazy("To review")), ("flagged", gettext_lazy("Flagged")),
        ("all", gettext_lazy("All"))]
REASON = forms.CharField(label=gettext_lazy("Reason"), max_length=500,
                         widget=forms.TextInput(attrs={"autocomplete": "off"}))


class ApproveForm(forms.Form):
    amount = forms.DecimalField(
        label=gettext_lazy("Amount to credit"), max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        help_text=gettext_lazy("What arrived, at most what was asked; the bonus is added "
                               "only on the whole amount."))
    reason = REASON

    def __init__(self, payment: Payment, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"amount": money_text(payment.amount)})
        super().__init__(*args, **kwargs)
        self.payment = payment

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount <= 0:
            raise forms.ValidationError(_("Credit more than zero, or reject the payment."))
        if amount > self.payment.amount:
            raise forms.ValidationError(_("At most what was asked: %(amount)s.") % {
                "amount": money(self.payment.amount)})
        return amount


class RejectForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"), max_length=500,
        help_text=gettext_lazy("Kept on the payment and in the customer's history."))


class SettleForm(forms.Form):
    adjustment = forms.DecimalField(
        label=gettext_lazy("Balance adjustment"), required=False, max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        help_text=gettext_lazy("Negative takes money back (e.g. a disputed "
                               "payment), positive adds; empty leaves the balance alone."))
    reason = REASON


def _staff(request: HttpRequest) -> User:
    return cast(User, request.user)


def _get_payment(pk: int) -> Payment:
    payment = Payment.objects.select_related("user", "method").filter(pk=pk).first()
    if payment is None:
        raise Http404
    return payment


def _search(listed: QuerySet[Payment], query: str) -> QuerySet[Payment]:
    by_id = parse_id(query.lstrip("#"))
    return listed.filter(Q(pk=by_id or 0) | Q(user__username__icontains=query)
                         | Q(gateway_id=query) | Q(customer_reference__icontains=query))


@desk_view("payments")
def payment_list(request: HttpRequest) -> HttpResponse:
    tab = request.GET.get("tab", "review")
    tab = tab if tab in dict(TABS) else "review"
    query = request.GET.get("q", "").strip()[:100]
    listed: QuerySet[Payment] = Payment.objects.all()
    if query:
        listed = _search(listed, query)
    counts = listed.aggregate(review=Count("pk", filter=awaiting_review_q()),
                              flagged=Count("pk", filter=flagged_q()), all=Count("pk"))
    if tab == "review":
        listed = listed.filter(awaiting_review_q()).order_by("created_at", "pk")
    elif tab == "flagged":
        listed = listed.filter(flagged_q()).order_by("updated_at", "pk")
    rows = listed.select_related("user", "method")
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "desk/payments/list.html", {
        "page": page, "tab": tab, "query": query, "page_query": params.urlencode(),
        "tabs": [{"slug": s, "label": label, "count": counts[s]} for s, label in TABS]})


def _detail(request: HttpRequest, payment: Payment, status: int = 200,
            **forms_given: forms.Form) -> HttpResponse:
    awaiting = decisions.awaits_decision(payment)
    context = {
        "payment": payment,
        "events": list(payment.events.select_related("actor")),
        "can_decide": awaiting,
        "can_settle": payment.flagged and not (awaiting and payment.method.is_manual),
        "approve_form": ApproveForm(payment, prefix="approve"),
        "reject_form": RejectForm(prefix="reject"),
        "settle_form": SettleForm(prefix="settle"),
        **forms_given,
    }
    return render(request, "desk/payments/payment.html", context, status=status)


@desk_view("payments")
def payment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, _get_payment(pk))


def _refused(request: HttpRequest, payment: Payment, name: str,
             form: forms.Form) -> HttpResponse:
    messages.error(request, _("Nothing changed: see the form below."))
    return _detail(request, payment, 400, **{name: form})


def _moved_on(request: HttpRequest, payment: Payment) -> HttpResponse:
    messages.warning(request, _("Nothing changed: the payment moved on since the page "
                                "showed it."))
    return redirect("desk:payment", pk=payment.pk)


@desk_view("payments")
@require_POST
def payment_approve(request: HttpRequest, pk: int) -> HttpResponse:
    payment = _get_payment(pk)
    form = ApproveForm(payment, request.POST, prefix="approve")
    if not form.is_valid():
        return _refused(request, payment, "approve_form", form)
    amount = form.cleaned_data["amount"]
    if not decisions.approve(_staff(request), payment, form.cleaned_data["reason"], amount):
        return _moved_on(request, payment)
    messages.success(request, _("Payment #%(id)s approved: %(amount)s credited to %(name)s.")
                     % {"id": payment.pk, "amount": money(amount), "name": payment.user})
    return redirect("desk:payment", pk=payment.pk)


@desk_view("payments")
@require_POST
def payment_reject(request: HttpRequest, pk: int) -> HttpResponse:
    payment = _get_payment(pk)
    form = RejectForm(request.POST, prefix="reject")
    if not form.is_valid():
        return _refused(request, payment, "reject_form", form)
    if not decisions.reject(_staff(request), payment, form.cleaned_data["reason"]):
        return _moved_on(request, payment)
    messages.success(request, _("Payment #%(id)s rejected: nothing credited.") % {
        "id": payment.pk})
    return redirect("desk:payment", pk=payment.pk)


@desk_view("payments")
@require_POST
def payment_settle(request: HttpRequest, pk: int) -> HttpResponse:
    payment = _get_payment(pk)
    form = SettleForm(request.POST, prefix="settle")
    if not form.is_valid():
        return _refused(request, payment, "settle_form", form)
    adjustment = form.cleaned_data["adjustment"] or None
    try:
        settled = decisions.settle(_staff(request), payment, form.cleaned_data["reason"],
                                   adjustment)
    except ledger.InsufficientFunds:
        form.add_error("adjustment", _("The balance does not cover this deduction."))
        return _refused(request, payment, "settle_form", form)
    if not settled:
        return _moved_on(request, payment)
    if adjustment:
        text = _("Flag settled; the balance was adjusted by %(amount)s.") % {
            "amount": money(adjustment)}
    else:
        text = _("Flag settled; the balance is unchanged.")
    messages.success(request, text)
    return redirect("desk:payment", pk=payment.pk)
