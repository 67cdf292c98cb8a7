from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from payments.models import PaymentMethod


class AddFundsForm(forms.Form):
    amount = forms.DecimalField(label=_("Amount"), max_digits=12, decimal_places=2,
                                min_value=Decimal("0.01"))
    reference = forms.CharField(
        label=_("Your payment's reference"), max_length=200, required=False,
        help_text=_("The transaction id or reference of the transfer you made, so staff can "
                    "find it."))

    def __init__(self, method: PaymentMethod, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.method = method
        self.fields["amount"].widget.attrs.update({
            "min": str(method.min_amount), "max": str(method.max_amount), "step": "0.01",
            "inputmode": "decimal"})
        if method.is_manual:
            self.fields["reference"].required = True
        else:
            del self.fields["reference"]

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        error = self.method.amount_error(amount)
        if error:
            raise forms.ValidationError(error)
        return amount
