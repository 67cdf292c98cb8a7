"""GET /metrics: refused without the token; with it, the series operators alert on —
orders by status, sweep lag, upstream calls with latency (counted across processes in
Redis), parked and flagged counts, ledger totals, provider balances."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from orders.dispatch import dispatch_one
from orders.models import Order
from panel import ledger
from providers import metrics as upstream_metrics
from providers.models import Provider
from tests.conftest import make_service
from tests.test_dispatch_faults import place

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-tests-0123456789"


@pytest.fixture(autouse=True)
def token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.PROVIDER_READ_TIMEOUT = 0.5
    upstream_metrics.reset()


def scrape(client: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((sample.labels, sample.value))
    return series


def value(series: dict[str, Any], name: str, **labels: str) -> float:
    matches = [v for got, v in series.get(name, []) if labels.items() <= got.items()]
    assert len(matches) == 1, (name, labels, series.get(name))
    return matches[0]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}",
                                           "Bearer "])
def test_anonymous_or_wrong_token_is_refused(client, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert b"panel_orders" not in response.content
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_no_token_configured_means_nobody_gets_in(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_the_endpoint_exposes_the_series_operators_watch(
        client, sandbox, catalog, alice, django_assert_max_num_queries):
    ledger.deposit(alice.pk, Decimal("50"))
    service = make_service(catalog, "Default", one_order_per_link=False)
    sent, parked, waiting = (place(alice, service) for _ in range(3))
    dispatch_one(sent.pk)  # bought: one `add` ok
    sandbox.set_fault("http500", action="add")
    dispatch_one(parked.pk)  # parked: one `add` ending in a 500
    Order.objects.filter(pk=waiting.pk).update(next_check_at=timezone.now()
                                               - timedelta(seconds=90))
    Order.objects.filter(pk=sent.pk).update(flagged_at=timezone.now(), flag_reason="look")
    Provider.objects.filter(pk=catalog.pk).update(balance=Decimal("123.45"),
                                                  balance_currency="USD",
                                                  balance_checked_at=timezone.now())

    with django_assert_max_num_queries(12):
        series = scrape(client)

    assert value(series, "panel_orders", status="queued") == 1
    assert value(series, "panel_orders", status="pending") == 1
    assert value(series, "panel_orders", status="needs_attention") == 1
    assert value(series, "panel_orders", status="completed") == 0
    assert value(series, "panel_orders_parked", provider="Sandbox") == 1
    assert value(series, "panel_orders_flagged", state="live") == 2  # the parked one too
    assert 90 <= value(series, "panel_sweep_lag_seconds", sweep="dispatch") < 150
    assert value(series, "panel_sweep_lag_seconds", sweep="poll_refills") == 0
    ok = {"provider": "Sandbox", "action": "add", "outcome": "ok"}
    failed = {**ok, "outcome": "transport/unknown"}
    assert value(series, "panel_upstream_calls_total", **ok) == 1
    assert value(series, "panel_upstream_calls_total", **failed) == 1
    assert value(series, "panel_upstream_call_duration_seconds_count", **ok) == 1
    assert value(series, "panel_upstream_call_duration_seconds_bucket", le="+Inf", **ok) == 1
    assert 0 < value(series, "panel_upstream_call_duration_seconds_sum", **ok) < 5
    charges = value(series, "panel_ledger_amount", kind="charge")
    assert charges < 0
    assert value(series, "panel_ledger_amount", kind="deposit") > 0
    total = sum(v for _, v in series["panel_ledger_amount"])
    assert value(series, "panel_customer_balances") == pytest.approx(total)
    assert value(series, "panel_provider_balance", provider="Sandbox", currency="USD") == 123.45
    assert value(series, "panel_provider_buying_paused", provider="Sandbox") == 0
    assert value(series, "panel_provider_poll_failures", provider="Sandbox") == 0


def test_upstream_calls_counted_in_another_process_show_up(client, settings):
    """Celery's workers make most calls; their counts reach the web's scrape through Redis."""
    import subprocess
    import sys

    if not settings.REDIS_URL:
        pytest.skip("counting across processes needs REDIS_URL")
    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
            "'panel.settings'); django.setup(); from providers.client import UpstreamCall; "
            "from providers.metrics import record_call; "
            "[record_call(UpstreamCall('Elsewhere', 'status', 'ok', 0.3, 200)) for _ in "
            "range(3)]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

    series = scrape(client)
    labels = {"provider": "Elsewhere", "action": "status", "outcome": "ok"}
    assert value(series, "panel_upstream_calls_total", **labels) == 3
    assert value(series, "panel_upstream_call_duration_seconds_bucket", le="0.25",
                 **labels) == 0
    assert value(series, "panel_upstream_call_duration_seconds_bucket", le="0.5", **labels) == 3
