from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from orders.models import Order
from orders.params import parse_id
from support.models import MAX_ORDER_IDS, Ticket

MESSAGE_MAX = 5000


class NewTicketForm(forms.Form):
    """A new ticket. Which of the subject's fields count depends on the subject: the page
    shows only those (static/js/tickets.js), and clean() ignores the others."""

    subject = forms.ChoiceField(label=_("Subject"), choices=Ticket.Subject.choices)
    request = forms.ChoiceField(
        label=_("Request"), choices=[("", "—"), *Ticket.Request.choices],
        error_messages={"required": _("Choose what you ask for these orders.")})
    order_ids = forms.CharField(
        label=_("Order IDs"), max_length=300,
        help_text=_("Up to %(n)d of your order ids, separated by commas.") % {
            "n": MAX_ORDER_IDS},
        error_messages={"required": _("Give the id of at least one of your orders.")})
    payment_method = forms.CharField(label=_("Payment method"), required=False, max_length=100)
    transaction_id = forms.CharField(
        label=_("Transaction ID"), max_length=200,
        error_messages={"required": _("Give the payment's transaction id, so we can find it.")})
    # The fields only one subject needs: required for it, ignored for the others.
    SUBJECT_FIELDS = {"request": Ticket.Subject.ORDER, "order_ids": Ticket.Subject.ORDER,
                      "transaction_id": Ticket.Subject.PAYMENT}
    message = forms.CharField(label=_("Message"), max_length=MESSAGE_MAX,
                              widget=forms.Textarea(attrs={"rows": 6}))

    def __init__(self, *args: Any, user_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_id = user_id
        if self.is_bound:
            subject = self.data.get("subject")
            for name, needed_by in self.SUBJECT_FIELDS.items():
                self.fields[name].required = subject == needed_by

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        subject = data.get("subject")
        if subject != Ticket.Subject.ORDER:
            data["request"], data["order_ids"] = "", []
        if subject != Ticket.Subject.PAYMENT:
            data["payment_method"] = data["transaction_id"] = ""
        if subject == Ticket.Subject.ORDER and data.get("order_ids"):
            data["order_ids"] = self._own_orders(data["order_ids"])
        return data

    def _own_orders(self, text: str) -> list[int]:
        parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
        if not parts:
            self.add_error("order_ids", _("Give the id of at least one of your orders."))
            return []
        ids = list(dict.fromkeys(parse_id(p.lstrip("#")) for p in parts))
        if None in ids:
            self.add_error("order_ids", _("Order ids are whole numbers, like 1234."))
            return []
        if len(ids) > MAX_ORDER_IDS:
            self.add_error("order_ids", ngettext("At most %(n)d order per ticket.",
                                                 "At most %(n)d orders per ticket.",
                                                 MAX_ORDER_IDS) % {"n": MAX_ORDER_IDS})
            return []
        own = set(Order.objects.for_customer(self.user_id).filter(pk__in=ids)
                  .values_list("pk", flat=True))
        unknown = [str(i) for i in ids if i not in own]
        if unknown:
            # Another customer's order reads as one that does not exist.
            self.add_error("order_ids", _("You have no order %(ids)s.") % {
                "ids": ", ".join(unknown)})
        return [i for i in ids if i is not None]

    def ticket_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {k: data[k] for k in ("subject", "request", "order_ids", "payment_method",
                                     "transaction_id")}


class ReplyForm(forms.Form):
    message = forms.CharField(label=_("Your reply"), max_length=MESSAGE_MAX,
                              widget=forms.Textarea(attrs={"rows": 4}))
