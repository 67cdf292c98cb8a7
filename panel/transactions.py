"""The customer's Transactions page: their ledger, filtered by kind, and its CSV export.

Ledger memos are written for staff (a failed order's memo carries the upstream's error), so
customers never see them raw: each entry is described from its kind and order reference,
with the reason for a refund taken from an allow-list of memo prefixes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from panel.csvexport import Echo, csv_cell
from panel.models import LedgerEntry, User

PER_PAGE = 25
KIND_TEXT = {
    LedgerEntry.Kind.DEPOSIT: gettext_lazy("Deposit"),
    LedgerEntry.Kind.CHARGE: gettext_lazy("Charge"),
    LedgerEntry.Kind.REFUND: gettext_lazy("Refund"),
    LedgerEntry.Kind.ADJUSTMENT: gettext_lazy("Adjustment"),
    LedgerEntry.Kind.BONUS: gettext_lazy("Bonus"),
}
# How a refund's memo starts (orders/models.py, orders/cancels.py) → what the customer reads.
REFUND_REASONS = (
    ("canceled", gettext_lazy("order canceled")),
    ("partial", gettext_lazy("part of the order was not delivered")),
    ("failed", gettext_lazy("the order could not be delivered")),
)


def describe(entry: LedgerEntry) -> str:
    """A customer-safe description of one entry."""
    if entry.kind == LedgerEntry.Kind.CHARGE:
        return _("Order #%(id)s") % {"id": entry.order_id}
    if entry.kind == LedgerEntry.Kind.REFUND:
        reason = next((str(text) for prefix, text in REFUND_REASONS
                       if entry.memo.startswith(prefix)), "")
        if reason:
            return _("Refund for order #%(id)s: %(reason)s") % {"id": entry.order_id,
                                                                 "reason": reason}
        return _("Refund for order #%(id)s") % {"id": entry.order_id}
    # Deposits carry the payment's own note; adjustments the reason staff gave the customer.
    return entry.memo


def _entries(request: HttpRequest) -> tuple[QuerySet[LedgerEntry], str]:
    kind = request.GET.get("kind", "")
    entries = LedgerEntry.objects.filter(user_id=cast(User, request.user).pk).only(
        "created_at", "kind", "amount", "balance_after", "order_id", "memo")
    if kind in LedgerEntry.Kind.values:
        return entries.filter(kind=kind), kind
    return entries, ""


@login_required
def transactions(request: HttpRequest) -> HttpResponse:
    entries, kind = _entries(request)
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    rows = [{"entry": e, "kind": KIND_TEXT[LedgerEntry.Kind(e.kind)], "text": describe(e)}
            for e in page.object_list]
    kinds = [{"value": "", "label": _("All")}] + [
        {"value": k, "label": label} for k, label in KIND_TEXT.items()]
    return render(request, "panel/customer/transactions.html", {
        "page": page, "rows": rows, "kinds": kinds, "kind": kind,
        "page_query": f"kind={kind}" if kind else ""})


def _csv_rows(entries: QuerySet[LedgerEntry]) -> Iterator[Any]:
    writer = csv.writer(Echo())
    yield writer.writerow([_("Date"), _("Kind"), _("Amount"), _("Balance after"), _("Order"),
                           _("Description")])
    for e in entries.iterator(chunk_size=2000):
        yield writer.writerow([
            timezone.localtime(e.created_at).isoformat(timespec="seconds"), e.kind,
            str(e.amount), str(e.balance_after), e.order_id or "", csv_cell(describe(e))])


@login_required
def transactions_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered list, every row, amounts exactly as the ledger holds them."""
    entries, kind = _entries(request)
    name = f"transactions-{kind or 'all'}-{timezone.localdate():%Y-%m-%d}.csv"
    response = StreamingHttpResponse(_csv_rows(entries), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
