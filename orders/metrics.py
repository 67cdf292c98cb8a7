"""The panel's Prometheus endpoint, GET /metrics, for a scraper holding METRICS_TOKEN.

prometheus-client is used bare (not django-prometheus): every series here is computed when
it is scraped — from the database (orders, sweeps, the ledger, providers), which all
processes share, and from the upstream call counts that every process adds to Redis
(providers/metrics.py) — so one web process answers for the whole panel, however many
gunicorn workers, Celery pools and containers there are. Nothing is kept per process, so
neither prometheus-client's multiprocess mode (a directory that gunicorn and the Celery
containers would have to share) nor django-prometheus' middleware on the API's hot path is
needed. A scrape costs about a dozen queries, whatever the traffic.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from orders.models import Order, Refill
from panel.models import LedgerEntry, User
from providers import metrics as upstream_metrics
from providers.models import Provider


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics, for `Authorization: Bearer <METRICS_TOKEN>` only; nobody when unset."""
    if not _authorized(request):
        response = HttpResponse("metrics need the bearer token (METRICS_TOKEN)\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PanelCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode())


class PanelCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from _orders()
        yield _sweep_lag(now)
        yield from _upstream_calls()
        yield from _ledger()
        yield from _providers(now)


def _orders() -> Iterator[Metric]:
    by_status = GaugeMetricFamily("panel_orders", "Orders by internal status.",
                                  labels=["status"])
    counts = dict(Order.objects.order_by().values_list("status").annotate(n=Count("id")))
    for status in Order.Status:
        by_status.add_metric([status.value], counts.get(status.value, 0))
    yield by_status
    parked = GaugeMetricFamily(
        "panel_orders_parked", "Orders whose send has an unknown outcome, for staff to settle, "
        "by the provider the send went to.", labels=["provider"])
    for provider, n in (Order.objects.parked().order_by().values_list("sent_to__name")
                        .annotate(n=Count("id"))):
        parked.add_metric([provider or ""], n)
    yield parked
    flagged = Order.objects.filter(flagged_at__isnull=False).aggregate(
        live=Count("id", filter=~Q(status__in=Order.TERMINAL)),
        ended=Count("id", filter=Q(status__in=Order.TERMINAL)))
    family = GaugeMetricFamily("panel_orders_flagged", "Orders flagged for staff, by whether "
                               "the order is still live.", labels=["state"])
    for state in ("live", "ended"):
        family.add_metric([state], flagged[state])
    yield family
    yield GaugeMetricFamily("panel_refills_flagged", "Refills flagged for staff.",
                            value=Refill.objects.filter(flagged_at__isnull=False,
                                                        status__in=Refill.ACTIVE).count())


def _sweep_lag(now: datetime) -> Metric:
    """How long the oldest due row of each sweep has waited: 0 when the sweep keeps up."""
    due_orders = Order.objects.order_by().aggregate(
        dispatch=Min("next_check_at", filter=Q(status=Order.Status.QUEUED,
                                              next_check_at__lte=now)),
        poll_orders=Min("next_check_at", filter=Q(status__in=Order.POLLED,
                                                 next_check_at__lte=now,
                                                 upstream_id__isnull=False)),
        send_cancels=Min("cancel_requested_at", filter=Q(
            Q(cancel_due_at__isnull=True) | Q(cancel_due_at__lte=now),
            cancel_requested_at__isnull=False, cancel_sent_at__isnull=True,
            status__in=Order.POLLED, upstream_id__isnull=False)))
    due_refills = Refill.objects.order_by().aggregate(
        send_refills=Min("next_check_at", filter=Q(status=Refill.Status.QUEUED,
                                                  next_check_at__lte=now)),
        poll_refills=Min("next_check_at", filter=Q(status__in=Refill.POLLED,
                                                  next_check_at__lte=now,
                                                  upstream_id__isnull=False)))
    family = GaugeMetricFamily("panel_sweep_lag_seconds", "Age of the oldest due row per "
                               "sweep (0: nothing waits).", labels=["sweep"])
    for sweep, oldest in {**due_orders, **due_refills}.items():
        family.add_metric([sweep], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    return family


def _upstream_calls() -> Iterator[Metric]:
    labels = ["provider", "action", "outcome"]
    calls = CounterMetricFamily("panel_upstream_calls", "HTTP exchanges with upstream "
                                "providers, by how they ended.", labels=labels)
    latency = HistogramMetricFamily("panel_upstream_call_duration_seconds",
                                    "How long upstream exchanges took.", labels=labels)
    for key, stats in sorted(upstream_metrics.upstream_calls().items()):
        calls.add_metric(list(key), stats.count)
        cumulative, buckets = 0, []
        for bound, n in zip(upstream_metrics.BUCKETS, stats.buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency.add_metric(list(key), buckets, stats.seconds)
    yield calls
    yield latency


def _ledger() -> Iterator[Metric]:
    family = GaugeMetricFamily("panel_ledger_amount", "Sum of ledger entries by kind, in the "
                               "panel's currency (charges are negative).", labels=["kind"])
    sums = dict(LedgerEntry.objects.order_by().values_list("kind").annotate(total=Sum("amount")))
    for kind in LedgerEntry.Kind:
        family.add_metric([kind.value], float(sums.get(kind.value) or 0))
    yield family
    total = User.objects.aggregate(total=Sum("balance"))["total"] or 0
    yield GaugeMetricFamily("panel_customer_balances", "Sum of all customers' balances; equals "
                            "the sum of the ledger.", value=float(total))


def _providers(now: datetime) -> Iterator[Metric]:
    balance = GaugeMetricFamily("panel_provider_balance", "Our balance at each upstream, in its "
                                "currency, as last checked.", labels=["provider", "currency"])
    age = GaugeMetricFamily("panel_provider_balance_age_seconds", "Time since the balance was "
                            "last checked.", labels=["provider"])
    paused = GaugeMetricFamily("panel_provider_buying_paused", "1 while buying from the "
                               "provider is paused (a currency mismatch).", labels=["provider"])
    failing = GaugeMetricFamily("panel_provider_poll_failures", "Status batches in a row that "
                                "got no answer.", labels=["provider"])
    for p in Provider.objects.filter(enabled=True).order_by("name"):
        if p.balance is not None:
            balance.add_metric([p.name, p.balance_currency or p.currency], float(p.balance))
        if p.balance_checked_at is not None:
            age.add_metric([p.name], (now - p.balance_checked_at).total_seconds())
        paused.add_metric([p.name], 1 if p.buying_paused_at else 0)
        failing.add_metric([p.name], p.poll_failures)
    yield from (balance, age, paused, failing)
