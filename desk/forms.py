"""The desk's forms: the orders list's filters and the fields of the staff actions."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Order, OrderQuerySet, Service
from providers.models import Provider


class OrderFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=500,
                        help_text=_("Order id, upstream id, link or username"))
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any status")), *Order.Status.choices])
    service = forms.ModelChoiceField(label=_("Service"), required=False,
                                     queryset=Service.objects.only("pk", "name"),
                                     empty_label=_("Any service"))
    provider = forms.ModelChoiceField(label=_("Provider"), required=False,
                                      queryset=Provider.objects.only("pk", "name"),
                                      empty_label=_("Any provider"))
    customer = forms.CharField(label=_("Customer"), required=False, max_length=150)
    date_from = forms.DateField(label=_("From"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))
    flagged = forms.BooleanField(label=_("Flagged only"), required=False)

    def filter(self, orders: OrderQuerySet) -> OrderQuerySet:
        """The orders these (valid) filters select; every filter is optional."""
        data: dict[str, Any] = self.cleaned_data if self.is_valid() else {}
        if data.get("q"):
            orders = orders.filter(_search(data["q"].strip()))
        if data.get("status"):
            orders = orders.filter(status=data["status"])
        if data.get("service"):
            orders = orders.filter(service=data["service"])
        if data.get("provider"):
            orders = orders.filter(provider=data["provider"])
        if data.get("customer"):
            orders = orders.filter(user__username__iexact=data["customer"].strip())
        zone = timezone.get_current_timezone()
        if data.get("date_from"):
            orders = orders.filter(
                created_at__gte=datetime.combine(data["date_from"], time.min, zone))
        if data.get("date_to"):
            orders = orders.filter(
                created_at__lte=datetime.combine(data["date_to"], time.max, zone))
        if data.get("flagged"):
            orders = orders.needing_attention()
        return orders


def _search(text: str) -> Q:
    """A number is an order id or an upstream id; anything is a link or a username."""
    match = Q(link__icontains=text) | Q(user__username__iexact=text)
    if text.lstrip("#").isdigit() and len(text) < 19:
        number = int(text.lstrip("#"))
        match |= Q(pk=number) | Q(upstream_id=number)
    return match


class ActionForm(forms.Form):
    """What any one action may need; desk/views/orders.py says which it does."""

    reason = forms.CharField(required=False, max_length=1000)
    route = forms.IntegerField(required=False, min_value=1)
    upstream_id = forms.IntegerField(required=False, min_value=1,
                                     max_value=9_223_372_036_854_775_807)
    remains = forms.IntegerField(required=False, min_value=0)
    amount = forms.DecimalField(required=False, min_value=Decimal("0.01"), max_digits=18,
                                decimal_places=2)
