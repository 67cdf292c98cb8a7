"""What the panel earned: revenue, cost and profit over a range, and each provider's
reconciliation. Aggregates in the database, a constant number of queries whatever the range.

Definitions (the admin's report pages say the same in words):
- An order counts on the day it was placed; drip-feed runs the panel sends itself are parts
  of their order, never orders of their own.
- Revenue is what the ledger kept: the order's charge entry less its refund entry.
- Cost is the order's cost snapshot (what its route cost when placed) for the share it kept:
  cost × revenue / charge, so a canceled or failed order costs nothing and a partial one
  its delivered share, as the upstream refunds its own charge for what it did not deliver.
- Reported cost is the same share of what the upstream itself said it charged (the snapshot
  plus Order.cost_difference, summed over a drip-feed's runs), only for orders where it did.
- Profit is revenue less cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Least, TruncDate
from django.utils import timezone

from orders.models import Order
from panel.models import LedgerEntry, User
from panel.money import MONEY_DIGITS, MONEY_PLACES, ZERO, quantize_money
from providers.models import Provider, ProviderBalanceCheck

MONEY: DecimalField[Any, Decimal] = DecimalField(max_digits=MONEY_DIGITS + 10,
                                                 decimal_places=MONEY_PLACES)
TOP_SERVICES = 10


class Round(Func):
    """ROUND(x, 5): half away from zero, as panel.money.quantize_money rounds."""

    function = "ROUND"
    arity = 2


def _money(expression: Any) -> Round:
    return Round(expression, Value(MONEY_PLACES), output_field=MONEY)


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the current time zone."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(first, time.min, tzinfo=zone)
    return start, datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)


def _ledger_net() -> Coalesce:
    """Per order: charge less refund, as a positive amount (charges are negative entries)."""
    entries = (LedgerEntry.objects.filter(order_id=OuterRef("pk"),
                                          kind__in=[LedgerEntry.Kind.CHARGE,
                                                    LedgerEntry.Kind.REFUND])
               .order_by().values("order_id").annotate(total=Sum("amount")).values("total"))
    return Coalesce(-Subquery(entries, output_field=MONEY), Value(ZERO), output_field=MONEY)


def _runs_difference() -> Subquery:
    runs = (Order.objects.filter(parent=OuterRef("pk"), cost_difference__isnull=False)
            .order_by().values("parent").annotate(total=Sum("cost_difference"))
            .values("total"))
    return Subquery(runs, output_field=MONEY)


def _first_run_provider() -> Subquery:
    runs = Order.objects.filter(parent=OuterRef("pk"), provider__isnull=False).order_by(
        "run_number").values("provider_id")[:1]
    return Subquery(runs)


def sold(start: datetime, end: datetime) -> QuerySet[Order]:
    """The orders placed in [start, end), each with its revenue (o_net), cost (o_cost) and
    reported cost (o_reported)."""
    kept = Case(When(charge__gt=0, then=F("o_net") / F("charge")), default=Value(ZERO),
                output_field=MONEY)
    return (Order.objects.filter(parent__isnull=True, created_at__gte=start, created_at__lt=end)
            .annotate(o_net=_ledger_net(),
                      difference=Coalesce("cost_difference", _runs_difference(),
                                          output_field=MONEY),
                      provider_key=Coalesce("provider_id", _first_run_provider(),
                                            output_field=BigIntegerField()))
            .annotate(o_cost=_money(F("cost") * kept),
                      o_reported=Case(
                          When(difference__isnull=False,
                               then=_money((F("cost") + F("difference")) * kept)),
                          default=None, output_field=MONEY)))


@dataclass
class Figures:
    label: str = ""
    key: Any = None
    orders: int = 0
    revenue: Decimal = ZERO
    cost: Decimal = ZERO
    # Over the orders whose upstream reported its charge only.
    reported_orders: int = 0
    reported_cost: Decimal = ZERO
    expected_of_reported: Decimal = ZERO

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.revenue:
            return None
        return (self.profit * 100 / self.revenue).quantize(Decimal("0.1"))

    @property
    def reported_difference(self) -> Decimal:
        """What the upstreams charged beyond the snapshots (negative: less)."""
        return self.reported_cost - self.expected_of_reported

    @property
    def profit_at_reported(self) -> Decimal:
        """Profit with the upstreams' own charges where they said them."""
        return self.profit - self.reported_difference


_FIGURES = {
    "orders": Count("pk"),
    "revenue": Coalesce(Sum("o_net"), Value(ZERO), output_field=MONEY),
    "cost": Coalesce(Sum("o_cost"), Value(ZERO), output_field=MONEY),
    "reported_orders": Count("pk", filter=Q(o_reported__isnull=False)),
    "reported_cost": Coalesce(Sum("o_reported"), Value(ZERO), output_field=MONEY),
    "expected_of_reported": Coalesce(Sum("o_cost", filter=Q(o_reported__isnull=False)),
                                     Value(ZERO), output_field=MONEY),
}


def _figures(values: dict[str, Any], label: str = "", key: Any = None) -> Figures:
    return Figures(label=label, key=key, orders=values["orders"],
                   revenue=quantize_money(values["revenue"]),
                   cost=quantize_money(values["cost"]),
                   reported_orders=values["reported_orders"],
                   reported_cost=quantize_money(values["reported_cost"]),
                   expected_of_reported=quantize_money(values["expected_of_reported"]))


def totals(start: datetime, end: datetime) -> Figures:
    return _figures(sold(start, end).aggregate(**_FIGURES))


def _grouped(start: datetime, end: datetime, *keys: str) -> list[dict[str, Any]]:
    return list(sold(start, end).order_by().values(*keys).annotate(**_FIGURES))


def by_day(start: datetime, end: datetime) -> list[Figures]:
    """One row per day of the range, days without orders included (a chart needs them)."""
    zone = timezone.get_current_timezone()
    rows = {r["day"]: r for r in sold(start, end).order_by().annotate(
        day=TruncDate("created_at", tzinfo=zone)).values("day").annotate(**_FIGURES)}
    days, day = [], timezone.localtime(start, zone).date()
    last = timezone.localtime(end, zone).date()
    while day < last:
        values = rows.get(day)
        days.append(_figures(values, day.isoformat(), day) if values
                    else Figures(label=day.isoformat(), key=day))
        day += timedelta(days=1)
    return days


def by_provider(start: datetime, end: datetime) -> list[Figures]:
    names = dict(Provider.objects.values_list("pk", "name"))
    rows = [_figures(r, names.get(r["provider_key"], "—"), r["provider_key"])
            for r in _grouped(start, end, "provider_key")]
    return sorted(rows, key=lambda f: -f.revenue)


def by_service(start: datetime, end: datetime) -> list[Figures]:
    rows = [_figures(r, f"#{r['service_id']} {r['service__name']}", r["service_id"])
            for r in _grouped(start, end, "service_id", "service__name")]
    return sorted(rows, key=lambda f: (-f.revenue, f.key))


def by_customer(start: datetime, end: datetime) -> list[Figures]:
    rows = [_figures(r, r["user__username"], r["user_id"])
            for r in _grouped(start, end, "user_id", "user__username")]
    return sorted(rows, key=lambda f: (-f.revenue, f.label))


def top_services(start: datetime, end: datetime, limit: int = TOP_SERVICES) -> list[Figures]:
    return by_service(start, end)[:limit]


def by_status(start: datetime, end: datetime) -> list[Figures]:
    labels = dict(Order.Status.choices)
    rows = [_figures(r, str(labels.get(r["status"], r["status"])), r["status"])
            for r in _grouped(start, end, "status")]
    return sorted(rows, key=lambda f: -f.orders)


@dataclass
class RefundCause:
    cause: str  # the order's status: partial, canceled, failed (or another, said as is)
    by_staff: bool
    refunds: int
    amount: Decimal

    @property
    def label(self) -> str:
        return str(dict(Order.Status.choices).get(self.cause, self.cause))


def refunds(start: datetime, end: datetime) -> list[RefundCause]:
    """The refunds of the orders placed in the range, by cause (the order's status) and by
    who made them (automatically, or staff on the desk)."""
    placed = Order.objects.filter(parent__isnull=True, created_at__gte=start,
                                  created_at__lt=end)
    status = Order.objects.filter(pk=OuterRef("order_id")).values("status")[:1]
    rows = (LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND,
                                       order_id__in=placed.values("pk"))
            .annotate(cause=Subquery(status),
                      by_staff=ExpressionWrapper(Q(actor__isnull=False),
                                                 output_field=BooleanField()))
            .order_by().values("cause", "by_staff")
            .annotate(refunds=Count("pk"), amount=Sum("amount")))
    return sorted((RefundCause(r["cause"], bool(r["by_staff"]), r["refunds"],
                               quantize_money(r["amount"])) for r in rows),
                  key=lambda c: (c.cause, c.by_staff))


# --- reconciliation per provider ----------------------------------------------------------

@dataclass
class Interval:
    """Between two balance checks: how the balance moved, and how our orders say it
    should have (their cost snapshots out, what the upstream gives back for canceled and
    partial orders in), both in the provider's currency."""

    start: ProviderBalanceCheck
    end: ProviderBalanceCheck
    sent_orders: int = 0
    sent_cost: Decimal = ZERO
    returned_orders: int = 0
    returned: Decimal = ZERO

    @property
    def moved(self) -> Decimal:
        return self.end.balance - self.start.balance

    @property
    def expected(self) -> Decimal:
        return self.returned - self.sent_cost

    @property
    def difference(self) -> Decimal:
        """Unexplained movement: a top-up shows here, and so does an upstream charging more
        (negative) or less than our snapshots say."""
        return self.moved - self.expected


def _undelivered_share() -> Case:
    whole: BigIntegerField[Any, int] = BigIntegerField()
    units = Case(When(charged_units=0, then=Value(1)), default=F("charged_units"),
                 output_field=whole)
    remains = Least(Coalesce("remains", Value(0), output_field=whole), F("charged_units"),
                    output_field=whole)
    return Case(When(status=Order.Status.CANCELED, then=Value(Decimal(1))),
                When(status=Order.Status.PARTIAL,
                     then=ExpressionWrapper(Cast(remains, MONEY) / units, output_field=MONEY)),
                default=Value(ZERO), output_field=MONEY)


def reconcile(provider: Provider, start: datetime, end: datetime) -> list[Interval]:
    """Every pair of consecutive balance checks of `provider` ending in [start, end), with
    the orders sent to it between them. Three queries."""
    checks = list(ProviderBalanceCheck.objects.filter(
        provider=provider, checked_at__lt=end).filter(
        Q(checked_at__gte=start) | Q(pk__in=ProviderBalanceCheck.objects.filter(
            provider=provider, checked_at__lt=start).order_by("-checked_at", "-id")
            .values("pk")[:1])).order_by("checked_at", "id"))
    intervals = [Interval(a, b) for a, b in pairwise(checks)]
    if not intervals:
        return []
    bought = Order.objects.filter(provider=provider, upstream_id__isnull=False)
    rate = provider.rate_to_panel or Decimal(1)
    window = Q(**{"at__gt": checks[0].checked_at, "at__lte": checks[-1].checked_at})
    sent = (bought.annotate(at=F("submitted_at")).filter(window)
            .values_list("at", "cost"))
    back = (bought.filter(status__in=[Order.Status.CANCELED, Order.Status.PARTIAL])
            .annotate(at=F("finished_at"), share=_money(F("cost") * _undelivered_share()))
            .filter(window).values_list("at", "share"))
    for at, cost in sent:
        interval = _containing(intervals, at)
        interval.sent_orders += 1
        interval.sent_cost += cost / rate
    for at, share in back:
        interval = _containing(intervals, at)
        interval.returned_orders += 1
        interval.returned += share / rate
    for interval in intervals:
        interval.sent_cost = quantize_money(interval.sent_cost)
        interval.returned = quantize_money(interval.returned)
    return intervals[::-1]  # latest first, as the page lists them


def _containing(intervals: list[Interval], at: datetime) -> Interval:
    for interval in intervals:
        if interval.start.checked_at < at <= interval.end.checked_at:
            return interval
    raise ValueError(at)  # the query's window keeps every order inside one interval


def charge_differences(provider: Provider, start: datetime, end: datetime) -> QuerySet[Order]:
    """Orders sent to `provider` in the range whose upstream charge differs from the cost
    snapshot, and those whose charge came in another currency (no comparison possible)."""
    return (Order.objects.filter(provider=provider, upstream_charge__isnull=False,
                                 created_at__gte=start, created_at__lt=end)
            .filter(Q(cost_difference__isnull=True) | ~Q(cost_difference=0))
            .select_related("service", "user").order_by("-created_at", "-id"))


# --- the admin dashboard --------------------------------------------------------------------

@dataclass
class Dashboard:
    today: Figures
    in_flight: int
    failures: list[Order] = field(default_factory=list)
    providers: list[Provider] = field(default_factory=list)


def dashboard(now: datetime | None = None, failures: int = 10) -> Dashboard:
    today = timezone.localdate(now)
    start, end = day_range(today, today)
    latest_failed = (Order.objects.filter(status=Order.Status.FAILED)
                     .select_related("service", "user").order_by("-finished_at", "-id"))
    return Dashboard(
        today=totals(start, end),
        in_flight=Order.objects.live().filter(parent__isnull=True).count(),
        failures=list(latest_failed[:failures]),
        providers=list(Provider.objects.annotate(
            in_flight=Count("orders", filter=~Q(orders__status__in=Order.TERMINAL)),
            has_checks=Exists(ProviderBalanceCheck.objects.filter(provider=OuterRef("pk"))))
            .order_by("name")),
    )


def customers_named(query: str, limit: int = 20) -> list[User]:
    """Customers for the price preview's chooser."""
    return list(User.objects.filter(username__icontains=query).order_by("username")[:limit])
