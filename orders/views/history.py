"""The customer's pages that list and follow things: services, orders and one order (with
its refill and cancel buttons), refills, drip-feed, subscriptions and service updates.

Every object is fetched through a helper scoped to the logged-in customer, so another
customer's order is a 404 like one that does not exist. Nothing here shows a provider, an
upstream id, a cost or an upstream error: the templates get only the fields below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import linebreaksbr
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from orders import cancels, pricing, refills
from orders.errors import Refusal
from orders.models import (
    Category,
    Order,
    OrderEvent,
    Refill,
    Route,
    Service,
    ServiceQuerySet,
    ServiceType,
    ServiceUpdate,
)
from orders.params import parse_id
from panel.models import User
from panel.money import quantize_rate

PER_PAGE = 25
SERVICES_PER_PAGE = 100
AVERAGE_OF = 10  # "based on the 10 latest completed orders", as customers know it
HUNDRED = Decimal(100)


def _customer(request: HttpRequest) -> User:
    return cast(User, request.user)


def _get_order_for_customer(request: HttpRequest, pk: int) -> Order:
    """The customer's own order, or a run of their own drip-feed; 404 for anything else."""
    order = (Order.objects.filter(user_id=_customer(request).pk, pk=pk)
             .select_related("service", "route__provider_service", "provider", "parent")
             .first())
    if order is None:
        raise Http404
    return order


def _page(request: HttpRequest, rows: QuerySet[Any], per_page: int = PER_PAGE,
          count: int | None = None) -> Page[Any]:
    """A page of `rows`; `count`, when the caller already knows it, saves the COUNT query."""
    paginator = Paginator(rows, per_page)
    if count is not None:
        paginator.count = count  # a cached_property: set in advance, it is never computed
    return paginator.get_page(request.GET.get("page"))


def _partial(request: HttpRequest) -> bool:
    """An htmx request for the list region only (a history restore wants the whole page)."""
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request


def _query_without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


# --- services ------------------------------------------------------------------------------

def rate_text(value: Decimal | None) -> str:
    """A price per 1000 without the trailing zeros of five places: 2.405, 12.50, 0.0065."""
    if value is None:
        return "—"
    whole, _dot, decimals = f"{value:f}".partition(".")
    return f"{whole}.{decimals.rstrip('0').ljust(2, '0')}"


def _purchasable() -> ServiceQuerySet:
    usable = Route.objects.filter(service=OuterRef("pk"), provider_service__offered=True,
                                  provider_service__provider__enabled=True)
    return Service.objects.enabled().filter(Exists(usable))


# What the catalog pages show above their rows (the category list, how many services a
# filter finds) is the same for every customer, and each takes a pass over the whole
# catalog: kept per process for CATALOG_CACHE_SECONDS, as placing keeps a service.
_listing: dict[tuple[object, ...], tuple[float, Any]] = {}


def _cached(key: tuple[object, ...], compute: Callable[[], Any]) -> Any:
    ttl = settings.CATALOG_CACHE_SECONDS
    if ttl <= 0:
        return compute()
    now = time.monotonic()
    hit = _listing.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    if len(_listing) > 1000:  # searches customers type must not grow it without bound
        _listing.clear()
    value = compute()
    _listing[key] = (now + ttl, value)
    return value


def categories_for_sale() -> list[dict[str, Any]]:
    """Categories with at least one service a customer can order, in their order, as the
    filters' options need them: id and name (plain dicts render fastest in a template)."""
    return cast(list[dict[str, Any]], _cached(("categories",), lambda: list(
        Category.objects.filter(Exists(_purchasable().filter(category=OuterRef("pk"))))
        .values("pk", "name"))))


def average_times(service_ids: list[int]) -> dict[int, timedelta]:
    """Per service, the mean time per 1000 (per order for flat types) over its AVERAGE_OF
    latest completed orders on this panel; only services with that many. One query."""
    if not service_ids:
        return {}
    flat = [ServiceType.PACKAGE.value, ServiceType.CUSTOM_COMMENTS_PACKAGE.value]
    sql = f"""
        SELECT service_id, AVG(seconds) FROM (
            SELECT o.service_id,
                   EXTRACT(EPOCH FROM o.finished_at - COALESCE(o.submitted_at, o.created_at))
                   * CASE WHEN s.type = ANY(%s) THEN 1
                          ELSE 1000.0 / GREATEST(o.charged_units, 1) END AS seconds,
                   ROW_NUMBER() OVER (PARTITION BY o.service_id
                                      ORDER BY o.finished_at DESC, o.id DESC) AS latest
            FROM {Order._meta.db_table} o JOIN {Service._meta.db_table} s ON s.id = o.service_id
            WHERE o.service_id = ANY(%s) AND o.status = %s AND o.finished_at IS NOT NULL
              AND o.parent_id IS NULL AND o.runs IS NULL
        ) recent WHERE latest <= %s GROUP BY service_id HAVING COUNT(*) >= %s
    """  # noqa: S608 (table names only; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [flat, service_ids, Order.Status.COMPLETED, AVERAGE_OF, AVERAGE_OF])
        return {pk: timedelta(seconds=float(seconds)) for pk, seconds in cursor.fetchall()}


def duration_text(value: timedelta | None) -> str:
    if value is None:
        return _("Not enough data")
    minutes = max(1, round(value.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours})
    if minutes and not days:
        parts.append(ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes})
    return " ".join(parts)


def _refill_text(service: Service) -> str:
    if not service.refill:
        return _("No")
    if not service.refill_days:
        return _("Lifetime")
    return ngettext("%(days)d day", "%(days)d days", service.refill_days) % {
        "days": service.refill_days}


def _description_html(text: str) -> str:
    return linebreaksbr(text) if "\n" in text else escape(text)


def _service_groups(services: list[Service], user: User) -> list[dict[str, Any]]:
    """The services table's rows under their categories' headings, each row's cells worked
    out here rather than by template tags per cell: a page has 100 rows, and the template's
    per-node cost dominated it. Texts many rows share are translated once."""
    custom = dict(user.custom_rates.filter(service__in=[s.pk for s in services])
                  .values_list("service_id", "rate"))
    averages = average_times([s.pk for s in services])
    order_url, yes, no = reverse("home"), _("Yes"), _("No")
    refill_texts: dict[tuple[bool, int], str] = {}
    not_enough = duration_text(None)
    groups: list[dict[str, Any]] = []
    for s in services:
        if not groups or groups[-1]["category_id"] != s.category_id:
            groups.append({"category_id": s.category_id, "name": s.category.name, "rows": []})
        refill_key = (s.refill, s.refill_days)
        if refill_key not in refill_texts:
            refill_texts[refill_key] = _refill_text(s)
        average = averages.get(s.pk)
        groups[-1]["rows"].append({
            "pk": str(s.pk), "name": s.name, "url": f"{order_url}?service={s.pk}",
            "rate": rate_text(pricing.customer_rate(s, user, custom)),
            "min": str(s.min_quantity), "max": str(s.max_quantity),
            "average": not_enough if average is None else duration_text(average),
            "refill": refill_texts[refill_key], "cancel": yes if s.cancel else no,
            "description": _description_html(s.description),
        })
    return groups


@login_required
def services(request: HttpRequest) -> HttpResponse:
    listed = _purchasable()
    category_id = parse_id(request.GET.get("category", ""))
    query = request.GET.get("q", "").strip()[:100]
    if category_id:
        listed = listed.filter(category_id=category_id)
    if query:
        by_id = parse_id(query.lstrip("#"))
        listed = listed.filter(Q(name__icontains=query) | Q(pk=by_id or 0))
    count = _cached(("count", category_id, query), listed.count)
    page = _page(request, listed.with_routes(), SERVICES_PER_PAGE, count=count)
    context = {
        "page": page, "groups": _service_groups(list(page.object_list), _customer(request)),
        "categories": categories_for_sale(), "category_id": category_id, "query": query,
        "page_query": _query_without_page(request),
    }
    template = "orders/customer/_services_list.html" if _partial(request) else \
        "orders/customer/services.html"
    return render(request, template, context)


# --- orders --------------------------------------------------------------------------------

# The tabs: API v2's statuses, each the internal states that show as it (Order.CUSTOMER_STATUS).
STATUS_TABS: list[tuple[str, str, Any]] = [
    ("pending", "Pending", gettext_lazy("Pending")),
    ("in_progress", "In progress", gettext_lazy("In progress")),
    ("processing", "Processing", gettext_lazy("Processing")),
    ("completed", "Completed", gettext_lazy("Completed")),
    ("partial", "Partial", gettext_lazy("Partial")),
    ("canceled", "Canceled", gettext_lazy("Canceled")),
]
CUSTOMER_STATUS_TEXT = {shown: label for _slug, shown, label in STATUS_TABS} | {
    "Rejected": gettext_lazy("Rejected")}


def internal_statuses(shown: str) -> list[str]:
    return [internal for internal, seen in Order.CUSTOMER_STATUS.items() if seen == shown]


def status_badge(shown: str) -> dict[str, str]:
    """What a status badge needs: its text and its colour class (never colour alone)."""
    return {"text": str(CUSTOMER_STATUS_TEXT.get(shown, shown)),
            "css": "status-" + shown.lower().replace(" ", "-")}


def _search_orders(orders: QuerySet[Order], query: str) -> QuerySet[Order]:
    by_id = parse_id(query.lstrip("#"))
    return orders.filter(Q(link__icontains=query) | Q(pk=by_id or 0))


@login_required
def orders(request: HttpRequest) -> HttpResponse:
    mine = Order.objects.for_customer(_customer(request).pk)
    # One grouped count (an index-only scan of order_customer_status_idx) serves the tabs
    # and, unless a search narrows the list, the pager too.
    by_status = dict(mine.order_by().values_list("status").annotate(n=Count("pk")))
    counts = {slug: sum(by_status.get(s, 0) for s in internal_statuses(shown))
              for slug, shown, _label in STATUS_TABS}
    counts[""] = sum(by_status.values())
    slugs = {slug: shown for slug, shown, _label in STATUS_TABS}
    current = request.GET.get("status", "")
    current = current if current in slugs else ""
    query = request.GET.get("q", "").strip()[:200]
    listed: QuerySet[Order] = mine.select_related("service")
    if current:
        listed = listed.filter(status__in=internal_statuses(slugs[current]))
    if query:
        listed = _search_orders(listed, query)
    page = _page(request, listed, count=None if query else counts[current])
    list_url = reverse("orders")  # an order's page is its id under it: /orders/<id>/
    tabs = [{"slug": "", "label": _("All"), "count": counts[""]}] + [
        {"slug": slug, "label": label, "count": counts[slug]} for slug, _s, label in STATUS_TABS]
    context = {
        "page": page, "rows": [_order_row(o, list_url) for o in page.object_list], "tabs": tabs,
        "current": current, "query": query, "page_query": _query_without_page(request),
    }
    template = "orders/customer/_orders_list.html" if _partial(request) else \
        "orders/customer/orders.html"
    return render(request, template, context)


def _order_row(order: Order, list_url: str) -> dict[str, Any]:
    """What one row of the orders table shows, worked out here rather than by template tags
    per cell: the page lists 25 rows and the template's per-node cost dominates it."""
    shown = order.to_api_dict("")
    created = timezone.localtime(order.created_at)
    # Subscriptions have no link: the account they follow stands in for it.
    # Counts as text: whole numbers read the same in every locale without a thousands
    # separator (USE_THOUSAND_SEPARATOR is off), and skip the template's number formatting.
    return {"pk": str(order.pk), "url": f"{list_url}{order.pk}/",
            "iso": created.isoformat(), "date": created.strftime("%Y-%m-%d %H:%M"),
            "target": order.link or order.params.get("username", "") or "—",
            "charge": order.charge - order.refunded, "start_count": str(order.start_count or 0),
            "quantity": str(order.charged_units), "service": order.service.name,
            "remains": shown["remains"], "badge": status_badge(order.customer_status)}


# --- one order -----------------------------------------------------------------------------

def refill_reason(order: Order, obstacle: str) -> str:
    """The order page's words for refills.refill_obstacle."""
    texts = {
        refills.REFILL_NOT_OFFERED: _("This service has no refill."),
        refills.REFILL_NOT_SUPPORTED: _("Refill is not available for this order: it is "
                                        "delivered by a service that takes no refill "
                                        "requests."),
        refills.REFILL_NOT_COMPLETED: _("Refill is available once the order is completed."),
        refills.REFILL_NO_UPSTREAM_ORDER: _("This order cannot be refilled as a whole."),
        refills.REFILL_PENDING: _("A refill of this order is already under way."),
        refills.REFILL_RUN: _("This is one run of a drip-feed order."),
        refills.REFILL_WINDOW_OVER: ngettext(
            "Refill is available for %(days)d day after completion.",
            "Refill is available for %(days)d days after completion.",
            order.service.refill_days) % {"days": order.service.refill_days},
    }
    return texts.get(obstacle, "")


def cancel_reason(obstacle: str) -> str:
    """The order page's words for cancels.cancel_obstacle."""
    return {
        cancels.CANCEL_NOT_OFFERED: _("This service cannot be canceled."),
        cancels.CANCEL_NOT_SUPPORTED: _("This order cannot be canceled: it is delivered by "
                                        "a service that takes no cancel requests."),
        cancels.CANCEL_REQUESTED: _("A cancel of this order was already requested."),
        cancels.CANCEL_FINISHED: _("This order is finished."),
        cancels.CANCEL_IN_FLIGHT: _("This order cannot be canceled while it is being sent."),
        cancels.CANCEL_RUNS_STARTED: _("Its runs have started: a drip-feed order cannot be "
                                       "canceled now."),
        cancels.CANCEL_RUN: _("This is one run of a drip-feed order."),
    }.get(obstacle, "")


@dataclass
class Moment:
    at: datetime
    text: str


def _event_text(order: Order, event: OrderEvent) -> str | None:
    """The allow-list of what a customer may read in an order's history. Every other kind
    (routes tried, staff actions, flags, upstream errors) stays on the staff desk, and no
    event's own message is shown: those name providers and upstream ids."""
    texts: dict[str, str] = {
        "sent": _("Your order was sent for delivery."),
        "refill_requested": _("You asked for a refill."),
        "cancel_requested": _("You asked to cancel this order."),
        "cancel_sent": _("The cancel request is being processed."),
        "cancel_failed": _("The cancel request did not go through: the order goes on."),
        "refund": _("%(amount)s was refunded to your balance.") % {"amount": order.refunded},
        "drip_feed": _("Drip-feed started: %(runs)s runs, one every %(interval)s minutes.") % {
            "runs": order.runs, "interval": order.interval},
    }
    if event.kind == "status":
        return _status_event_text(event.message)
    # Staff declined a request: their reason is written for the customer (desk/actions.py).
    if event.kind == "refill_rejected_by_staff":
        return _("Your refill request was declined: %(reason)s") % {"reason": event.message}
    if event.kind == "cancel_refused_by_staff":
        return _("Your cancel request was declined: %(reason)s") % {"reason": event.message}
    return texts.get(event.kind)


def _status_event_text(message: str) -> str | None:
    """A status change polling saw ("… reports it In progress"): only the status word, and
    only one of the customer statuses, is shown."""
    for shown, label in CUSTOMER_STATUS_TEXT.items():
        if message.endswith(f" {shown}"):
            return _("Status: %(status)s.") % {"status": label}
    return None


def customer_history(order: Order, events: list[OrderEvent]) -> list[Moment]:
    moments = [Moment(order.created_at, _("Order placed."))]
    moments += [Moment(e.created_at, text) for e in events
                if (text := _event_text(order, e)) is not None]
    if order.is_terminal and order.finished_at is not None:
        moments.append(Moment(order.finished_at, _finish_text(order)))
    return sorted(moments, key=lambda m: m.at)


def _finish_text(order: Order) -> str:
    shown = order.customer_status  # a failure shows as Canceled, as the API says
    if shown == "Completed":
        return _("Order completed.")
    if shown == "Partial":
        if order.remains is None:
            return _("Order partly delivered.")
        return _("Order partly delivered: %(remains)s not delivered.") % {
            "remains": order.remains}
    return _("Order canceled.")


def order_again_url(order: Order) -> str:
    params: dict[str, Any] = {"service": order.service_id}
    if order.link:
        params["link"] = order.link
    params.update({k: v for k, v in order.params.items() if k != "service"})
    if order.runs:
        params.update(runs=order.runs, interval=order.interval)
    return f"{reverse('home')}?{urlencode(params)}"


def _subscription_info(order: Order) -> dict[str, Any]:
    """What a Subscriptions order shows: its username, posts done of posts, expiry."""
    p = order.params
    posts = int(p.get("posts") or 0) + int(p.get("old_posts") or 0)
    per_post = int(p.get("max") or 0)
    done: int | None = None
    if order.status == Order.Status.COMPLETED:
        done = posts
    elif order.customer_status == "Pending":
        done = 0  # not started upstream yet
    elif order.remains is not None and per_post:
        # Charged at `max` per post; each post gets between min and max, so this counts
        # posts whose `max` was delivered: a floor, never more than were paid for.
        done = min(posts, max(0, order.charged_units - order.remains) // per_post)
    return {"username": p.get("username", ""), "posts": posts, "posts_done": done,
            "min": p.get("min", ""), "max": p.get("max", ""), "delay": p.get("delay", ""),
            "expiry": p.get("expiry", "")}


@login_required
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = _get_order_for_customer(request, pk)
    events = list(order.events.only("kind", "message", "created_at", "order_id"))
    order_refills = list(order.refills.order_by("-id"))
    active = any(r.status in Refill.ACTIVE for r in order_refills)
    refill_block = refills.refill_obstacle(order, active_refill=active)
    cancel_block = cancels.cancel_obstacle(order)
    runs = list(order.runs_set.order_by("run_number")) if order.runs else []
    context = {
        "order": order, "row": _order_row(order, reverse("orders")),
        "history": customer_history(order, events),
        "refills": [{"refill": r, "badge": status_badge(r.customer_status)}
                    for r in order_refills],
        "can_refill": not refill_block, "refill_reason": refill_reason(order, refill_block),
        "can_cancel": not cancel_block, "cancel_reason": cancel_reason(cancel_block),
        "runs": [{"run": r, "badge": status_badge(r.customer_status)} for r in runs],
        "again_url": order_again_url(order) if order.parent_id is None else "",
        "subscription": _subscription_info(order)
        if order.service.type == ServiceType.SUBSCRIPTIONS else None,
    }
    return render(request, "orders/customer/order_detail.html", context)


@login_required
@require_POST
def order_refill(request: HttpRequest, pk: int) -> HttpResponse:
    order = _get_order_for_customer(request, pk)
    try:
        refill = refills.request_refill(_customer(request), order.pk)
    except Refusal:
        order.refresh_from_db()
        reason = refill_reason(order, refills.refill_obstacle(order))
        messages.error(request, reason or _("This order cannot be refilled now."))
    else:
        messages.success(request, _("Refill #%(id)s requested.") % {"id": refill.pk})
    return redirect("order_detail", pk=order.pk)


@login_required
@require_POST
def order_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    order = _get_order_for_customer(request, pk)
    try:
        cancels.request_cancel(_customer(request), order.pk)
    except Refusal:
        order.refresh_from_db()
        reason = cancel_reason(cancels.cancel_obstacle(order))
        messages.error(request, reason or _("This order cannot be canceled now."))
    else:
        order.refresh_from_db()
        messages.success(request, _("Order canceled and refunded.") if order.is_terminal
                         else _("Cancel requested: the refund follows once it is canceled."))
    return redirect("order_detail", pk=order.pk)


# --- refills, drip-feed, subscriptions -----------------------------------------------------

@login_required
def refill_list(request: HttpRequest) -> HttpResponse:
    listed = Refill.objects.filter(user_id=_customer(request).pk).select_related("order__service")
    page = _page(request, listed)
    rows = [{"refill": r, "badge": status_badge(r.customer_status)} for r in page.object_list]
    return render(request, "orders/customer/refills.html", {"page": page, "rows": rows,
                                                            "page_query": ""})


def _dripfeed_row(order: Order) -> dict[str, Any]:
    runs = list(order.runs_set.all())
    total = order.runs or 0
    if runs:  # the panel runs it: count the runs that ended
        done: int | None = sum(r.is_terminal for r in runs)
    elif order.status == Order.Status.COMPLETED:
        done = total
    elif order.customer_status == "Pending":
        done = 0  # not started upstream yet
    elif order.remains is not None and order.quantity:
        # The upstream runs it and reports only what remains to deliver overall.
        done = min(total, max(0, order.charged_units - order.remains) // order.quantity)
    else:
        done = None
    return {"order": order, "runs_done": done, "total_quantity": order.charged_units,
            "badge": status_badge(order.customer_status),
            "runs": [{"run": r, "badge": status_badge(r.customer_status)} for r in runs]}


@login_required
def dripfeed(request: HttpRequest) -> HttpResponse:
    run_rows = Order.objects.only("pk", "parent_id", "run_number", "status").order_by(
        "run_number")
    listed = (Order.objects.for_customer(_customer(request).pk).filter(runs__isnull=False)
              .select_related("service").prefetch_related(Prefetch("runs_set", run_rows)))
    page = _page(request, listed)
    rows = [_dripfeed_row(o) for o in page.object_list]
    return render(request, "orders/customer/dripfeed.html", {"page": page, "rows": rows,
                                                             "page_query": ""})


@login_required
def subscriptions(request: HttpRequest) -> HttpResponse:
    listed = (Order.objects.for_customer(_customer(request).pk)
              .filter(service__type=ServiceType.SUBSCRIPTIONS).select_related("service"))
    page = _page(request, listed)
    rows = [{"order": o, "info": _subscription_info(o), "badge": status_badge(o.customer_status)}
            for o in page.object_list]
    return render(request, "orders/customer/subscriptions.html", {"page": page, "rows": rows,
                                                                  "page_query": ""})


# --- service updates -----------------------------------------------------------------------

UPDATE_TEXT = {
    ServiceUpdate.Kind.NEW: gettext_lazy("New service"),
    ServiceUpdate.Kind.PRICE_UP: gettext_lazy("Price up"),
    ServiceUpdate.Kind.PRICE_DOWN: gettext_lazy("Price down"),
    ServiceUpdate.Kind.DISABLED: gettext_lazy("No longer available"),
    ServiceUpdate.Kind.ENABLED: gettext_lazy("Available again"),
}


def at_customer_price(rate: Decimal | None, user: User) -> Decimal | None:
    """A logged list price at this customer's discount (a custom rate is shown apart)."""
    if rate is None:
        return None
    return quantize_rate(rate * (1 - user.discount_percent / HUNDRED))


@login_required
def updates(request: HttpRequest) -> HttpResponse:
    user = _customer(request)
    page = _page(request, ServiceUpdate.objects.select_related("service"))
    entries = list(page.object_list)
    custom = dict(user.custom_rates.filter(service__in=[u.service_id for u in entries])
                  .values_list("service_id", "rate"))
    rows = [{"update": u, "text": UPDATE_TEXT[ServiceUpdate.Kind(u.kind)],
             "css": "update-" + u.kind.replace("_", "-"),
             "old": at_customer_price(u.old_rate, user),
             "new": at_customer_price(u.new_rate, user), "custom": custom.get(u.service_id)}
            for u in entries]
    return render(request, "orders/customer/updates.html", {"page": page, "rows": rows,
                                                            "page_query": ""})
