"""An upstream whose multi-id status slows down with the number of ids (the sandbox's
`slow_multi_status` quirk: a configurable delay per id, as a panel scanning its table once per
id). The panel adapts each provider's status batch size from what it measures: a timed-out
batch is not asked again as it is, the size is halved, a reply slower than the target cuts
it, fast full batches grow it back, always within 1..100. The admin's provider page shows it.
End to end: the real client, polling and the sandbox over HTTP."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from orders import dispatch, polling
from orders.models import Order
from orders.placing import place_order
from panel import ledger
from providers.models import Provider, adapted_batch_size
from tests.conftest import make_service

pytestmark = pytest.mark.django_db

COUNT = 100


@pytest.fixture
def live_orders(catalog, alice, sandbox) -> list[Order]:
    """100 orders the upstream keeps In progress, so every sweep asks about all of them."""
    ledger.deposit(alice.pk, Decimal("10000"))
    service = make_service(catalog, "Default", one_order_per_link=False)
    for i in range(COUNT):
        place_order(alice, service.pk, {"link": f"https://x.com/{i}",
                                        "quantity": service.min_quantity})
    assert dispatch.dispatch_due(limit=COUNT) == COUNT
    orders = list(Order.objects.filter(service=service))
    for order in orders:
        sandbox.force_order(order.upstream_id, status="In progress")
    return orders


@pytest.fixture
def slow_upstream(sandbox, settings):
    settings.PROVIDER_READ_TIMEOUT = 0.5
    settings.PROVIDER_READ_RETRIES = 2  # retries stay on for reads; not for a slow batch
    settings.STATUS_BATCH_TARGET_SECONDS = 0.3
    sandbox.set_quirk("slow_multi_status")
    sandbox.set_status_delay(0.03)  # 100 ids: 3 s; 10 ids: 0.3 s


def test_the_sandbox_answers_a_long_status_list_later(sandbox):
    import time

    import requests

    requests.post(f"{sandbox.control_url}/quirk", timeout=5,
                  json={"quirk": "slow_multi_status", "per_id": 0.05}).raise_for_status()

    def took(**ids: str) -> float:
        started = time.monotonic()
        requests.post(sandbox.url, timeout=5,
                      data={"key": sandbox.key, "action": "status", **ids}).raise_for_status()
        return time.monotonic() - started

    assert took(orders=",".join(str(10001 + i) for i in range(20))) >= 1.0
    assert took(order="10001") < 0.5  # one id, the single form: no list to scan


def _sweep(provider: Provider) -> tuple[polling.PollStats, int]:
    Order.objects.filter(status__in=Order.POLLED).update(
        next_check_at=timezone.now() - timedelta(seconds=1))
    stats = polling.poll_orders()
    provider.refresh_from_db()
    return stats, provider.status_batch_size


def _requests(caplog: Any) -> int:
    return sum(1 for r in caplog.records if getattr(r, "upstream_action", None) == "status")


def test_a_timed_out_batch_halves_the_size_and_is_not_asked_again(
        catalog, live_orders, slow_upstream, caplog):
    caplog.set_level(logging.INFO, logger="providers.client")

    stats, size = _sweep(catalog)

    assert size == 50
    assert catalog.status_timed_out_at is not None
    # One request: no retry of the slow list, and the provider is left alone this sweep.
    assert stats.requests == 1 == _requests(caplog) and stats.errors == 1
    assert not Order.objects.filter(pk__in=[o.pk for o in live_orders], checks__gt=0).exists()


def test_the_size_settles_where_replies_come_in_time_and_grows_back(
        catalog, live_orders, slow_upstream, sandbox):
    sizes = [_sweep(catalog)[1] for _ in range(4)]

    assert sizes[:3] == [50, 25, 12]  # halved after each timeout
    assert sizes[3] < 12  # 12 ids took 0.36 s, over the 0.3 s target: cut to fit it
    assert catalog.status_latency_ms is not None and catalog.status_latency_ms < 500
    # Once the size fits, a sweep answers every order, in requests that each came in time.
    stats, settled = _sweep(catalog)
    assert stats.errors == 0 and stats.orders == COUNT
    assert 1 <= settled <= 12
    assert all(o.checks >= 1 for o in Order.objects.filter(pk__in=[o.pk for o in live_orders]))

    # The upstream is fast again: full batches answered in time grow it back to 100.
    sandbox.set_quirk("slow_multi_status", on=False)
    grown = [_sweep(catalog)[1] for _ in range(6)]
    assert grown == sorted(grown) and grown[0] > settled
    assert grown[-1] == 100


def test_the_provider_page_shows_the_status_batch_size(catalog, live_orders, slow_upstream,
                                                       django_user_model, client):
    _sweep(catalog)
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-1234567")
    client.force_login(boss)

    page = client.get(f"/admin/providers/provider/{catalog.pk}/change/").content.decode()

    assert "Ids per status request" in page and "Last status request timed out" in page
    assert '<div class="readonly">50</div>' in page
    listing = client.get("/admin/providers/provider/").content.decode()
    assert "field-status_batch_size" in listing


@pytest.mark.parametrize(("size", "ids", "seconds", "expected"), [
    (100, 100, None, 50),   # timed out: halved
    (1, 1, None, 1),        # never below 1
    (100, 30, None, 15),    # a short batch that timed out: half of what it carried
    (20, 20, 0.6, 10),      # twice the target: cut to what fits it
    (20, 20, 0.1, 30),      # a full batch well in time: grown by half
    (20, 20, 0.25, 24),     # near the target: grown only to what fits it
    (20, 20, 0.29, 20),     # at it: kept
    (90, 90, 0.1, 100),     # never above 100
    (40, 5, 0.01, 40),      # a short batch says nothing about a full one
])
def test_the_batch_size_rule(size, ids, seconds, expected):
    assert adapted_batch_size(size, ids, seconds, target=0.3) == expected
