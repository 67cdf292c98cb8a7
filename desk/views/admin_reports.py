"""The admin desk's reports (revenue, cost and profit over a range, refunds, statuses), each
provider's reconciliation, and the admin dashboard. Figures come from orders/reports.py;
every table here has its CSV."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from desk.access import admin_view
from desk.charts import bars_and_line
from desk.queue import attention_count
from orders import reports
from orders.reports import Figures
from panel.csvexport import csv_row
from providers.models import Provider

MAX_DAYS = 366
TABLE_ROWS = 50


class RangeForm(forms.Form):
    date_from = forms.DateField(label=gettext_lazy("From"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=gettext_lazy("To"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))
    provider = forms.ModelChoiceField(label=gettext_lazy("Provider"), required=False,
                                      queryset=Provider.objects.only("pk", "name"),
                                      empty_label=None)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("date_from"), data.get("date_to")
        if first and last and first > last:
            self.add_error("date_to", _("The end is before the start."))
        elif first and last and (last - first).days >= MAX_DAYS:
            self.add_error("date_to", _("At most %(days)s days at once.") % {"days": MAX_DAYS})
        return data

    def days(self) -> tuple[date, date]:
        """The chosen days; the last 30 days by default (or when the choice is invalid)."""
        today = timezone.localdate()
        data = self.cleaned_data if self.is_valid() else {}
        last = data.get("date_to") or today
        first = data.get("date_from") or last - timedelta(days=29)
        return first, last

    def bounds(self) -> tuple[datetime, datetime]:
        return reports.day_range(*self.days())


def _range_form(request: HttpRequest) -> RangeForm:
    form = RangeForm(request.GET or None)
    if not request.GET:
        first, last = form.days()
        form = RangeForm({"date_from": first, "date_to": last})
    return form


FIGURE_COLUMNS = ["orders", "revenue", "cost", "profit", "margin_percent", "reported_orders",
                  "reported_cost", "reported_difference", "profit_at_reported"]


def _tables(start: datetime, end: datetime) -> dict[str, list[Figures]]:
    return {"day": reports.by_day(start, end), "provider": reports.by_provider(start, end),
            "service": reports.by_service(start, end),
            "customer": reports.by_customer(start, end),
            "status": reports.by_status(start, end)}


@admin_view
def reports_page(request: HttpRequest) -> HttpResponse:
    form = _range_form(request)
    start, end = form.bounds()
    tables = _tables(start, end)
    days = tables["day"]
    chart = bars_and_line(_("Revenue (bars) and profit (line) by day"),
                          [d.label for d in days], [d.revenue for d in days],
                          [d.profit for d in days])
    return render(request, "desk/admin/reports.html", {
        "form": form, "query": request.GET.urlencode(), "total": reports.totals(start, end),
        "chart": chart, "tables": tables, "busy_days": [d for d in days if d.orders],
        "top": tables["service"][:reports.TOP_SERVICES],
        "services_more": max(0, len(tables["service"]) - TABLE_ROWS),
        "customers_more": max(0, len(tables["customer"]) - TABLE_ROWS),
        "refunds": reports.refunds(start, end), "first_last": form.days(),
        "table_rows": TABLE_ROWS})


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow(csv_row(row))
    return response


@admin_view
def report_csv(request: HttpRequest, table: str) -> HttpResponse:
    form = _range_form(request)
    start, end = form.bounds()
    first, last = form.days()
    name = f"{table}-{first}-{last}"
    if table == "refunds":
        return _csv(name, ["cause", "by_staff", "refunds", "amount"],
                    [[r.cause, r.by_staff, r.refunds, r.amount]
                     for r in reports.refunds(start, end)])
    if table == "top":
        rows = reports.top_services(start, end)
    elif table in ("day", "provider", "service", "customer", "status"):
        rows = _tables(start, end)[table] if table != "day" else reports.by_day(start, end)
    else:
        raise Http404
    return _csv(name, [table, "key", *FIGURE_COLUMNS],
                [[f.label, f.key, *(getattr(f, c) for c in FIGURE_COLUMNS)] for f in rows])


def _provider(form: RangeForm) -> Provider | None:
    if form.is_valid() and form.cleaned_data.get("provider"):
        provider: Provider = form.cleaned_data["provider"]
        return provider
    return Provider.objects.order_by("name").first()


@admin_view
def reconciliation(request: HttpRequest) -> HttpResponse:
    form = _range_form(request)
    start, end = form.bounds()
    provider = _provider(form)
    intervals = reports.reconcile(provider, start, end) if provider else []
    differences = (reports.charge_differences(provider, start, end) if provider
                   else None)
    page = Paginator(differences, TABLE_ROWS).get_page(request.GET.get("page")) \
        if differences is not None else None
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "desk/admin/reconciliation.html", {
        "form": form, "provider": provider, "intervals": intervals, "page": page,
        "query": params.urlencode(), "page_query": params.urlencode(),
        "unexplained": sum((i.difference for i in intervals), start=reports.ZERO)})


@admin_view
def reconciliation_csv(request: HttpRequest, table: str) -> HttpResponse:
    form = _range_form(request)
    start, end = form.bounds()
    provider = _provider(form)
    if provider is None:
        raise Http404
    if table == "intervals":
        return _csv(f"reconciliation-{provider.pk}", [
            "from", "to", "balance_from", "balance_to", "moved", "sent_orders", "sent_cost",
            "returned_orders", "returned", "expected", "difference"],
            [[i.start.checked_at.isoformat(), i.end.checked_at.isoformat(), i.start.balance,
              i.end.balance, i.moved, i.sent_orders, i.sent_cost, i.returned_orders,
              i.returned, i.expected, i.difference]
             for i in reports.reconcile(provider, start, end)])
    if table == "differences":
        return _csv(f"charge-differences-{provider.pk}", [
            "order", "created_at", "customer", "service", "status", "cost", "upstream_charge",
            "upstream_currency", "cost_difference"],
            [[o.pk, o.created_at.isoformat(), o.user.username, o.service.name, o.status,
              o.cost, o.upstream_charge, o.upstream_currency, o.cost_difference]
             for o in reports.charge_differences(provider, start, end)])
    raise Http404


@admin_view
def dashboard(request: HttpRequest) -> HttpResponse:
    board = reports.dashboard()
    return render(request, "desk/admin/dashboard.html", {
        "board": board, "attention": attention_count(),
        "failed_syncs": [p for p in board.providers if p.last_sync_ok is False]})
