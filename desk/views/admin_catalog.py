"""The admin desk's catalog import: a provider's services (search, filter, cost in both
currencies, where each is already sold), then a selection previewed with its prices and
margins and imported through orders/importing.py."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from desk.access import admin_view
from desk.models import audit
from orders.importing import OTHER, ImportPlan, import_selected, importable, preview
from orders.models import Category, Route, ServiceType
from panel.models import User
from providers.models import Provider, ProviderService

PER_PAGE = 50
PREVIEW_ROWS = 200  # a preview of more shows these and the totals; the import takes all


class CatalogFilter(forms.Form):
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=200,
                        help_text=gettext_lazy("Name or upstream id"))
    category = forms.ChoiceField(label=gettext_lazy("Upstream category"), required=False)
    type = forms.ChoiceField(label=gettext_lazy("Type"), required=False)

    def __init__(self, data: Any, categories: list[str]) -> None:
        super().__init__(data)
        cast(forms.ChoiceField, self.fields["category"]).choices = [
            ("", _("Any category")), *((c, c or _("(none)")) for c in categories)]
        cast(forms.ChoiceField, self.fields["type"]).choices = [("", _("Any type")),
                                                                *ServiceType.choices]

    def apply(self, rows: QuerySet[ProviderService]) -> QuerySet[ProviderService]:
        if not self.is_valid():
            return rows
        data = self.cleaned_data
        if data["q"]:
            query = Q(name__icontains=data["q"])
            if data["q"].strip().isdigit():
                query |= Q(upstream_id=int(data["q"].strip()))
            rows = rows.filter(query)
        if data["category"]:
            rows = rows.filter(category=data["category"])
        if data["type"]:
            rows = rows.filter(type=data["type"])
        return rows

    def query(self) -> str:
        if not self.is_valid():
            return ""
        return urlencode({k: v for k, v in self.cleaned_data.items() if v})


class ImportForm(forms.Form):
    TARGETS = [("existing", gettext_lazy("Into one of our categories")),
               ("new", gettext_lazy("Into a new category")),
               ("map", gettext_lazy("Each into our category of its upstream category's name "
                                    "(created where missing)"))]
    PRICINGS = [("markup", gettext_lazy("Markup on the cost")),
                ("fixed", gettext_lazy("Fixed price per 1000"))]

    ids = forms.TypedMultipleChoiceField(coerce=int, required=False)
    all_matching = forms.BooleanField(required=False)
    target = forms.ChoiceField(label=gettext_lazy("Category"), choices=TARGETS,
                               widget=forms.RadioSelect, initial="new")
    # Not "category": the catalog's filter of that name travels in the same form.
    into = forms.ModelChoiceField(label=gettext_lazy("Our category"), required=False,
                                  queryset=Category.objects.all())
    new_category = forms.CharField(label=gettext_lazy("New category's name"), required=False,
                                   max_length=200)
    pricing = forms.ChoiceField(label=gettext_lazy("Price"), choices=PRICINGS,
                                widget=forms.RadioSelect, initial="markup")
    markup_percent = forms.DecimalField(
        label=gettext_lazy("Markup %"), required=False, min_value=Decimal(-99),
        max_value=Decimal(10000), decimal_places=2,
        help_text=gettext_lazy("Empty: the category's markup, or the default."))
    fixed_rate = forms.DecimalField(label=gettext_lazy("Fixed price per 1000"),
                                    required=False, min_value=Decimal("0.000001"),
                                    decimal_places=6)
    follow_price = forms.BooleanField(label=gettext_lazy("Price follows the upstream's cost"),
                                      required=False, initial=True)
    sync_name = forms.BooleanField(label=gettext_lazy("Sync may update the name"),
                                   required=False)
    sync_description = forms.BooleanField(
        label=gettext_lazy("Sync may update the description"), required=False)
    sync_bounds = forms.BooleanField(label=gettext_lazy("Sync may update min and max"),
                                     required=False)

    def __init__(self, data: Any = None, choices: list[int] | None = None) -> None:
        super().__init__(data)
        cast(forms.ChoiceField, self.fields["ids"]).choices = [(i, i) for i in choices or []]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        target = data.get("target")
        if target == "existing" and not data.get("into"):
            self.add_error("into", _("Choose the category."))
        if target == "new":
            name = (data.get("new_category") or "").strip()
            if not name:
                self.add_error("new_category", _("Name the new category."))
            elif Category.objects.filter(name=name).exists():
                self.add_error("new_category", _("A category of this name exists: choose it "
                                                 "as one of ours."))
        if data.get("pricing") == "fixed" and data.get("fixed_rate") is None:
            self.add_error("fixed_rate", _("Give the fixed price."))
        if not data.get("ids") and not data.get("all_matching"):
            raise forms.ValidationError(_("Tick the services to import."))
        return data

    def plan(self, post: Any) -> ImportPlan:
        data = self.cleaned_data
        fixed = data["pricing"] == "fixed"
        return ImportPlan(
            category=data["into"] if data["target"] == "existing" else None,
            new_category=data["new_category"].strip() if data["target"] == "new" else "",
            map_categories=data["target"] == "map",
            markup_percent=None if fixed else data["markup_percent"],
            fixed_rate=data["fixed_rate"] if fixed else None,
            follow_price=data["follow_price"], sync_name=data["sync_name"],
            sync_description=data["sync_description"], sync_bounds=data["sync_bounds"],
            category_map=_category_map(post),
            names=_overrides(post, "name_"), descriptions=_overrides(post, "description_"))


def _category_map(post: Any) -> dict[str, str]:
    """The preview's mapping rows: mapfrom_<i> (an upstream category) → map_<i> (ours)."""
    return {post[key]: post.get(f"map_{key[8:]}", "").strip()[:200]
            for key in post if key.startswith("mapfrom_") and key[8:].isdigit()}


def _overrides(post: Any, prefix: str) -> dict[int, str]:
    """Per-row fields of the preview (name_<id>, description_<id>), kept as typed."""
    found = {}
    for key, value in post.items():
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            found[int(key[len(prefix):])] = value.strip()
    return {k: v for k, v in found.items() if v or prefix == "description_"}


@dataclass
class CatalogRow:
    upstream: ProviderService
    panel_cost: Decimal


def _catalog_rows(provider: Provider, page: Page[ProviderService]) -> list[CatalogRow]:
    return [CatalogRow(u, provider.to_panel_currency(u.cost_rate)) for u in page]


def _filtered(request_data: Any, provider: Provider) -> tuple[CatalogFilter,
                                                              QuerySet[ProviderService]]:
    categories = list(importable(provider).order_by("category").values_list(
        "category", flat=True).distinct())
    filters = CatalogFilter(request_data, categories)
    return filters, filters.apply(importable(provider))


def _admin(request: HttpRequest) -> User:
    return cast(User, request.user)  # admin_view let only a signed-in admin through


@admin_view
def catalog(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk)
    filters, rows = _filtered(request.GET, provider)
    sold = Prefetch("routes", queryset=Route.objects.select_related("service__category"))
    # Not the raw reply: the list does not show it, and it widens every row PostgreSQL sorts.
    paginator = Paginator(rows.defer("raw").prefetch_related(sold), PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "desk/admin/catalog.html", {
        "provider": provider, "filters": filters, "page": page,
        "rows": _catalog_rows(provider, page), "page_query": filters.query(),
        "form": ImportForm(), "categories": Category.objects.only("pk", "name"),
    })


def _selection(form: ImportForm, post: Any, provider: Provider) -> list[ProviderService]:
    if form.cleaned_data["all_matching"]:
        return list(_filtered(post, provider)[1])
    return list(importable(provider).filter(pk__in=form.cleaned_data["ids"]))


@admin_view
@require_POST
def catalog_import(request: HttpRequest, pk: int) -> HttpResponseBase:
    provider = get_object_or_404(Provider, pk=pk)
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    form = ImportForm(request.POST, choices=ids)
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(str(e) for e in error))
        return redirect("desk:admin_catalog", pk=provider.pk)
    selection, plan = _selection(form, request.POST, provider), form.plan(request.POST)
    if request.POST.get("action") != "import":
        rows = preview(selection, plan)
        return render(request, "desk/admin/catalog_preview.html", {
            "provider": provider, "form": form, "rows": rows[:PREVIEW_ROWS],
            "total": len(rows), "below": sum(r.at_floor for r in rows),
            "hidden": _carried(request.POST), "plan": plan,
            "mapping": _mapping(selection, plan) if plan.map_categories else [],
            "categories": Category.objects.only("pk", "name")})
    with transaction.atomic():
        services = import_selected(selection, plan)
        audit(_admin(request), "catalog.import", provider=provider.pk, count=len(services),
              services=[s.pk for s in services[:1000]])
    messages.success(request, _("%(n)s services imported from %(p)s.") % {
        "n": len(services), "p": provider.name})
    return redirect("desk:admin_catalog", pk=provider.pk)


def _carried(post: Any) -> list[tuple[str, str]]:
    """The selection and the plan, as hidden fields for the preview's buttons (the fields
    the preview itself shows are left out)."""
    skip = ("csrfmiddlewaretoken", "action")
    shown = ("name_", "description_", "map_", "mapfrom_")
    return [(k, v) for k in post for v in post.getlist(k)
            if k not in skip and not k.startswith(shown)]


@dataclass
class MappingRow:
    upstream: str  # an upstream category of the selection
    ours: str  # the category of ours it goes into (created if no such one)


def _mapping(selection: list[ProviderService], plan: ImportPlan) -> list[MappingRow]:
    names = sorted({u.category or OTHER for u in selection})
    return [MappingRow(name, plan.category_map.get(name) or name) for name in names]
