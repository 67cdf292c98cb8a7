"""The attention queue: what staff must look at, counted for the navigation's badge and
listed on the desk's first page, grouped by provider and hour so that one upstream's outage
is one group with one action."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from orders.models import Order, OrderEvent, ParkPhase, Refill, Route

# Events whose message is what an upstream said (or what the panel made of its silence):
# the "last upstream reply" staff read before they resend or attach. Not "flagged": that is
# the panel's own reason, shown as the reason.
UPSTREAM_KINDS = ("sent", "status", "needs_attention", "route_failed", "route_busy",
                  "deferred", "cancel_sent", "cancel_failed", "cancel_refused",
                  "cancel_unknown", "refill_flagged", "refill_rejected")
# How many orders the first page lists; past that the page says how many more there are.
QUEUE_LIMIT = 300
WINDOW = timedelta(hours=1)


def attention_count() -> int:
    return Order.objects.needing_attention().count() + Refill.objects.needing_attention().count()


def with_desk_details(orders: QuerySet[Order]) -> QuerySet[Order]:
    """Everything a desk list shows of an order, in one query plus one for the routes."""
    last = OrderEvent.objects.filter(order=OuterRef("pk"), kind__in=UPSTREAM_KINDS).order_by(
        "-created_at", "-id")
    routes = Route.objects.select_related("provider_service__provider").order_by("priority", "id")
    return (orders.select_related("user", "service", "provider", "sent_to",
                                  "route__provider_service__provider",
                                  "forced_route__provider_service__provider")
            .prefetch_related(Prefetch("service__routes", queryset=routes))
            .annotate(last_reply=Subquery(last.values("message")[:1]),
                      last_reply_at=Subquery(last.values("created_at")[:1])))


def order_actions(order: Order) -> list[str]:
    """The desk actions that make sense for this order now (desk/actions.py)."""
    status = order.status
    if status == Order.Status.NEEDS_ATTENTION:
        return ["attach", "resend", "fail_and_refund", "mark_completed"]
    if status == Order.Status.SUBMITTING:
        return ["attach"]  # its send is in flight: only a link found by hand settles it
    if status == Order.Status.QUEUED:
        return ["fail_and_refund"] + (["dismiss"] if order.flagged_at else [])
    actions: list[str] = []
    if status in Order.POLLED and not order.runs_by_panel:
        actions = ["mark_completed", "cancel_by_hand"]
    elif status == Order.Status.PARTIAL and not order.refunded and not order.parent_id:
        actions = ["settle_remains"] if order.refund_units() is not None else []
        actions.append("settle_amount")
    if order.flagged_at:
        actions.append("dismiss")
    return actions


def last_route(order: Order) -> Route | None:
    """The route the order went to (or would go to): its own once sent; for one parked
    mid-send, the one dispatch was trying — routes are tried in priority order and a parked
    send's route is the first not yet given up (`tried_routes`). Needs the service's routes
    prefetched (with_desk_details)."""
    if order.route_id is not None:
        return order.route
    if order.forced_route_id is not None:
        return order.forced_route
    routes = list(order.service.routes.all())
    untried = [r for r in routes if r.pk not in order.tried_routes]
    return next(iter(untried or routes), None)


def provider_name(order: Order) -> str:
    if order.provider is not None:
        return order.provider.name
    if order.sent_to is not None:  # recorded right before the send that was parked
        return order.sent_to.name
    route = last_route(order)
    return route.provider.name if route is not None else ""


@dataclass
class Group:
    provider: str
    window_start: datetime
    phase: str = ""  # where the parked sends broke (Order.park_phase), "" for flagged ones
    orders: list[Order] = field(default_factory=list)

    @property
    def phase_label(self) -> str:
        return str(ParkPhase(self.phase).label) if self.phase else ""

    @property
    def window_end(self) -> datetime:
        return self.window_start + WINDOW

    @property
    def ids(self) -> str:
        return ",".join(str(o.pk) for o in self.orders)

    @property
    def parked(self) -> int:
        return sum(o.status == Order.Status.NEEDS_ATTENTION for o in self.orders)


def since(order: Order) -> datetime:
    """When the order started to need a person."""
    return order.flagged_at or order.created_at


def grouped(orders: list[Order]) -> list[Group]:
    """Orders by provider, then by the hour they came to need attention (latest first),
    then by where their sends broke: one upstream's read timeouts of one hour are one group,
    settled by one action."""
    groups: dict[tuple[str, datetime, str], Group] = {}
    for order in orders:
        local = timezone.localtime(order.parked_at or since(order))
        start = local.replace(minute=0, second=0, microsecond=0)
        provider = provider_name(order)
        key = (provider, start, order.park_phase)
        groups.setdefault(key, Group(provider, start, order.park_phase)).orders.append(order)
    # Within a provider's hour, the parked sends (unknown outcomes) before the flagged rest.
    return sorted(groups.values(),
                  key=lambda g: (g.provider, -g.window_start.timestamp(), not g.phase, g.phase))


def queue_orders() -> tuple[list[Order], int]:
    """The orders of the queue (oldest first within the limit) and how many there are."""
    queued = Order.objects.needing_attention()
    orders = list(with_desk_details(queued).order_by("flagged_at", "created_at")[:QUEUE_LIMIT])
    total = len(orders) if len(orders) < QUEUE_LIMIT else queued.count()
    return orders, total


def queue_refills() -> list[Refill]:
    return list(Refill.objects.needing_attention()
                .select_related("order__service", "order__user", "provider")
                .order_by("flagged_at", "created_at")[:QUEUE_LIMIT])
