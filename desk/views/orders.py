"""Every customer's orders (filters, search, pages, CSV), one order's whole story, and the
staff actions on one order or a selection of them."""

from __future__ import annotations

import csv
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from desk import actions
from desk.access import desk_view
from desk.forms import ActionForm, OrderFilterForm
from desk.models import AuditEntry
from desk.queue import last_route, order_actions, with_desk_details
from desk.views import redirect_back
from orders.models import Order, OrderEvent, Refill, Route
from panel.csvexport import Echo, csv_row
from panel.models import User
from panel.templatetags.panel_money import money

PER_PAGE = 50
CSV_LIMIT = 50_000

ACTION_LABELS = {
    "attach": gettext_lazy("Attach the upstream id"),
    "resend": gettext_lazy("Resend"),
    "fail_and_refund": gettext_lazy("Fail and refund"),
    "mark_completed": gettext_lazy("Mark completed"),
    "settle_remains": gettext_lazy("Settle by remains"),
    "settle_amount": gettext_lazy("Settle by amount"),
    "cancel_by_hand": gettext_lazy("Mark canceled upstream"),
    "dismiss": gettext_lazy("Dismiss the flag"),
}
# Where money moves, or a resend may buy twice: the action is refused without a reason.
NEEDS_REASON = {"resend", "fail_and_refund", "mark_completed", "settle_remains",
                "settle_amount", "cancel_by_hand"}


def _staff(request: HttpRequest) -> User:
    return cast(User, request.user)


def _order(pk: int) -> Order:
    order = with_desk_details(Order.objects.filter(pk=pk)).first()
    if order is None:
        raise Http404
    return order


def _filtered(request: HttpRequest) -> tuple[OrderFilterForm, Any]:
    form = OrderFilterForm(request.GET or None)
    return form, form.filter(Order.objects.all()).order_by("-id")


@desk_view("orders")
def order_list(request: HttpRequest) -> HttpResponse:
    form, orders = _filtered(request)
    page = Paginator(with_desk_details(orders), PER_PAGE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "desk/orders.html", {
        "form": form, "page": page, "page_query": params.urlencode(),
        "filtering": any(v for k, v in request.GET.items() if k not in ("q", "page")),
        "rows": [{"order": o, "route": last_route(o)} for o in page.object_list]})


CSV_COLUMNS = ["id", "created_at", "customer", "service", "provider", "upstream_id", "status",
               "link", "quantity", "charge", "refunded", "cost", "remains", "flag_reason"]


@desk_view("orders")
def order_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered list as CSV, streamed in id order, up to CSV_LIMIT rows."""
    _, orders = _filtered(request)
    rows = orders.values_list("pk", "created_at", "user__username", "service__name",
                              "provider__name", "upstream_id", "status", "link",
                              "charged_units", "charge", "refunded", "cost", "remains",
                              "flag_reason")[:CSV_LIMIT]
    writer = csv.writer(Echo())
    lines = (writer.writerow(csv_row(row)) for row in rows.iterator(chunk_size=2000))
    response = StreamingHttpResponse(
        _chain([writer.writerow(CSV_COLUMNS)], lines), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response


def _chain(*parts: Any) -> Any:
    for part in parts:
        yield from part


@desk_view("orders")
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = _order(pk)
    events = list(OrderEvent.objects.filter(order=order).select_related("actor"))
    audits = list(AuditEntry.objects.filter(order=order).select_related("actor"))
    refills = list(Refill.objects.filter(order=order).select_related("provider"))
    net = order.charge - order.refunded
    real_cost = order.cost + (order.cost_difference or Decimal(0))
    return render(request, "desk/order.html", {
        "order": order, "events": events, "audits": audits, "refills": refills,
        "route": last_route(order), "actions": order_actions(order), "net_charge": net,
        "real_cost": real_cost, "margin": net - real_cost,
        "routes": list(order.service.routes.all())})


def _route_of(order: Order, route_id: int | None) -> Route | None:
    return next((r for r in order.service.routes.all() if r.pk == route_id), None)


def run_action(staff: User, order: Order, action: str, form: ActionForm) -> str:
    """Do one action; "" when it was done, else why not (for the staff's message)."""
    if action not in order_actions(order):
        return _("That action does not apply to this order now.")
    data = form.cleaned_data
    reason = (data.get("reason") or "").strip()
    if action in NEEDS_REASON and not reason:
        return _("Say why: this action moves money or may buy again.")
    route = _route_of(order, data.get("route"))
    calls: dict[str, Callable[[], bool]] = {
        "attach": lambda: route is not None and bool(data.get("upstream_id"))
        and actions.attach_upstream_id(staff, order, data["upstream_id"], route, reason),
        "resend": lambda: route is not None and actions.resend(staff, order, route, reason),
        "fail_and_refund": lambda: actions.fail_and_refund(staff, order, reason),
        "mark_completed": lambda: actions.mark_completed(staff, order, reason),
        "settle_remains": lambda: data.get("remains") is not None
        and actions.settle_partial_by_remains(staff, order, data["remains"], reason),
        "settle_amount": lambda: data.get("amount") is not None
        and actions.settle_partial_by_amount(staff, order, data["amount"], reason),
        "cancel_by_hand": lambda: actions.cancel_by_hand(staff, order, reason),
        "dismiss": lambda: actions.dismiss_flag(staff, order, reason),
    }
    if not calls[action]():
        return _("Nothing was done: check the fields, or the order moved on meanwhile.")
    return ""


@desk_view("orders")
@require_POST
def order_action(request: HttpRequest, pk: int) -> HttpResponse:
    order = _order(pk)
    action = request.POST.get("action", "")
    form = ActionForm(request.POST)
    problem = run_action(_staff(request), order, action, form) if form.is_valid() else _(
        "Check the fields: %(errors)s") % {"errors": form.errors.as_text()}
    label = ACTION_LABELS.get(action, action)
    if problem:
        messages.error(request, _("Order %(id)s, %(action)s: %(problem)s") % {
            "id": order.pk, "action": label, "problem": problem})
    else:
        messages.success(request, _("Order %(id)s: %(action)s done.") % {
            "id": order.pk, "action": label})
    return redirect_back(request, reverse("desk:order", args=[order.pk]))


# --- bulk actions -------------------------------------------------------------------------

BULK_ACTIONS = ("resend", "fail_and_refund")


def _selected(request: HttpRequest) -> list[int]:
    raw = request.POST.getlist("ids") or request.GET.getlist("ids")
    ids: list[int] = []
    for chunk in raw:
        ids += [int(part) for part in chunk.split(",") if part.strip().isdigit()]
    return sorted(set(ids))[:500]


def _plan(orders: list[Order], action: str) -> list[dict[str, Any]]:
    """What the action will do to each selected order, or why it will skip it."""
    plan = []
    for order in orders:
        route = last_route(order)
        if action not in order_actions(order):
            what, ok = _("skipped: not possible in its status (%(status)s)") % {
                "status": order.get_status_display()}, False
        elif action == "resend" and (route is None or not route.is_usable()):
            what, ok = _("skipped: no usable route"), False
        elif action == "resend":
            assert route is not None
            what, ok = _("resent to %(provider)s (service %(upstream)s)") % {
                "provider": route.provider, "upstream": route.provider_service.upstream_id}, True
        else:
            what, ok = _("failed, %(amount)s refunded to %(customer)s") % {
                "amount": money(order.charge), "customer": order.user.username}, True
        plan.append({"order": order, "route": route, "what": what, "ok": ok})
    return plan


@desk_view("orders")
def bulk(request: HttpRequest) -> HttpResponse:
    """One confirmation listing what will happen to each selected order, then all of it."""
    action = request.POST.get("action") or request.GET.get("action", "")
    if action not in BULK_ACTIONS:
        raise Http404
    orders = list(with_desk_details(Order.objects.filter(pk__in=_selected(request)))
                  .order_by("id"))
    plan = _plan(orders, action)
    if request.method == "POST" and request.POST.get("confirm"):
        return _run_bulk(request, action, plan)
    return render(request, "desk/bulk.html", {
        "action": action, "label": ACTION_LABELS[action], "plan": plan,
        "ids": ",".join(str(o.pk) for o in orders), "doable": sum(p["ok"] for p in plan),
        "back": request.POST.get("next") or request.GET.get("next") or reverse("desk:attention")})


def _run_bulk(request: HttpRequest, action: str, plan: list[dict[str, Any]]) -> HttpResponse:
    reason = request.POST.get("reason", "").strip()
    if not reason:
        messages.error(request, _("Say why: this action moves money or may buy again."))
        return redirect(f"{reverse('desk:bulk')}?action={action}&ids="
                        + ",".join(str(p["order"].pk) for p in plan))
    staff, done = _staff(request), 0
    for step in plan:
        if not step["ok"]:
            continue
        order = step["order"]
        if action == "resend":
            done += actions.resend(staff, order, step["route"], reason)
        else:
            done += actions.fail_and_refund(staff, order, reason)
    messages.success(request, _("%(action)s: %(done)s of %(total)s orders done.") % {
        "action": ACTION_LABELS[action], "done": done, "total": len(plan)})
    return redirect_back(request, reverse("desk:attention"))
