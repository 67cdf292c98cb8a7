"""The admin desk's provider form: the key is write-only (never rendered back)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from providers.models import Provider


class HttpsURLField(forms.URLField):
    """A scheme-less URL typed by an admin means https (Django 6's default, chosen now)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("assume_scheme", "https")
        super().__init__(**kwargs)


class ProviderForm(forms.ModelForm):
    api_key = forms.CharField(
        label=_("API key"), required=False, max_length=500, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))

    class Meta:
        model = Provider
        fields = ["name", "api_url", "api_key", "currency", "rate_to_panel",
                  "low_balance_threshold", "enabled"]
        field_classes = {"api_url": HttpsURLField}
        labels = {"rate_to_panel": _("Conversion rate to the panel's currency"),
                  "low_balance_threshold": _("Low-balance threshold")}
        help_texts = {"rate_to_panel": _("1 unit of the provider's currency is this many of "
                                         "the panel's."),
                      "currency": _("Three letters, as the provider bills: USD, EUR, …")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["api_key"].help_text = _(
                "Stored encrypted, never shown again (now %(masked)s). Leave empty to keep it."
            ) % {"masked": self.instance.masked_key}
        else:
            self.fields["api_key"].required = True
            self.fields["api_key"].help_text = _("Stored encrypted and never shown again.")

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError(_("Three letters, such as USD."))
        return currency

    def clean_rate_to_panel(self) -> Any:
        rate = self.cleaned_data["rate_to_panel"]
        if rate is not None and rate <= 0:
            raise forms.ValidationError(_("The rate must be above zero."))
        return rate

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            provider.api_key = self.cleaned_data["api_key"]
        if commit:
            provider.save()
        return provider
