"""The admin desk's forms for what we sell: the services list's filters and bulk edit, one
service, its routes, and the categories."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from orders import pricing
from orders.models import Category, Service, ServiceQuerySet
from orders.params import parse_id
from providers.models import Provider, ProviderService


class ServiceFilterForm(forms.Form):
    STATES = [("", _("Any")), ("enabled", _("Enabled")), ("disabled", _("Disabled")),
              ("floor", _("Held at the floor"))]

    q = forms.CharField(label=_("Search"), required=False, max_length=200,
                        help_text=_("Service id or name"))
    category = forms.ModelChoiceField(label=_("Category"), required=False,
                                      queryset=Category.objects.all(),
                                      empty_label=_("Any category"))
    provider = forms.ModelChoiceField(label=_("Provider"), required=False,
                                      queryset=Provider.objects.only("pk", "name"),
                                      empty_label=_("Any provider"))
    state = forms.ChoiceField(label=_("State"), required=False, choices=STATES)
    customer = forms.CharField(label=_("Prices for customer"), required=False, max_length=150,
                               help_text=_("Username: their discount or custom rates applied"))

    def filter(self, services: ServiceQuerySet) -> ServiceQuerySet:
        data: dict[str, Any] = self.cleaned_data if self.is_valid() else {}
        query = (data.get("q") or "").strip()
        if query:
            number = parse_id(query.lstrip("#"))
            services = services.filter(Q(name__icontains=query) | Q(pk=number or 0))
        if data.get("category"):
            services = services.filter(category=data["category"])
        if data.get("provider"):
            services = services.filter(
                routes__provider_service__provider=data["provider"]).distinct()
        state = data.get("state")
        if state == "enabled":
            services = services.filter(enabled=True)
        elif state == "disabled":
            services = services.filter(enabled=False)
        elif state == "floor":
            services = services.filter(pk__in=pricing.held_at_floor_ids(services))
        return services


class BulkServiceForm(forms.Form):
    ACTIONS = [("markup", _("Set the markup")), ("category", _("Move to a category")),
               ("enable", _("Enable")), ("disable", _("Disable"))]

    ids = forms.CharField(widget=forms.HiddenInput)
    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS)
    markup_percent = forms.DecimalField(label=_("Markup %"), required=False, max_digits=7,
                                        decimal_places=2, min_value=Decimal(0),
                                        help_text=_("Empty: the category's or the default"))
    category = forms.ModelChoiceField(label=_("Category"), required=False,
                                      queryset=Category.objects.all())

    def clean_ids(self) -> list[int]:
        ids = [parse_id(part) for part in self.cleaned_data["ids"].split(",")]
        if not ids or None in ids:
            raise forms.ValidationError(_("Tick at least one service."))
        return [i for i in ids if i is not None]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "category" and not data.get("category"):
            self.add_error("category", _("Choose the category to move them to."))
        return data


class ServiceForm(forms.ModelForm):
    class Meta:
        model = Service
        fields = ["enabled", "name", "description", "category", "min_quantity",
                  "max_quantity", "refill", "refill_days", "cancel", "dripfeed",
                  "markup_percent", "fixed_rate"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def clean(self) -> dict[str, Any]:
        """Bounds inside the primary route's: an order it refuses would fail over or fail."""
        data = super().clean() or {}
        low, high = data.get("min_quantity"), data.get("max_quantity")
        if low is not None and high is not None and low > high:
            self.add_error("max_quantity", _("The maximum must not be below the minimum."))
        routes = self.instance.usable_routes() if self.instance.pk else []
        if routes and low is not None and high is not None:
            upstream = routes[0].provider_service
            if low < upstream.min_quantity or high > upstream.max_quantity:
                self.add_error("min_quantity", _(
                    "Keep min and max inside the primary route's %(low)s–%(high)s.") % {
                    "low": upstream.min_quantity, "high": upstream.max_quantity})
        fixed = data.get("fixed_rate")
        if fixed is not None and fixed <= 0:
            self.add_error("fixed_rate", _("A fixed price must be above zero."))
        return data


class RouteForm(forms.Form):
    provider = forms.ModelChoiceField(label=_("Provider"), queryset=Provider.objects.all())
    upstream_id = forms.IntegerField(label=_("Upstream service id"), min_value=1)

    def __init__(self, *args: Any, service: Service, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        upstream = ProviderService.objects.filter(provider=data["provider"],
                                                  upstream_id=data["upstream_id"]).first()
        if upstream is None:
            raise forms.ValidationError(_("That provider lists no such service."))
        if not upstream.offered:
            raise forms.ValidationError(_("That provider no longer offers this service."))
        if self.service.routes.filter(provider_service=upstream).exists():
            raise forms.ValidationError(_("The service already has this route."))
        data["provider_service"] = upstream
        return data


class CategoryForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = ["name", "position", "markup_percent", "enabled"]


CategoryFormSet = forms.modelformset_factory(Category, form=CategoryForm, extra=0)
