"""A status batch that fails as a whole (the upstream down, a 500, garbage) backs its orders
off within POLL_FIRST_DELAY..POLL_MAX_DELAY, doubling per failed batch of that provider in
a row, instead of leaving them to wait out the five-minute lease. Against the sandbox over
HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from orders import polling, refills
from orders.models import Order, Refill
from providers.models import Provider
from tests.test_polling_faults import _live_orders, _make_due

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_polls(settings: Any) -> None:
    settings.POLL_FIRST_DELAY = 10
    settings.POLL_MAX_DELAY = 60  # under the lease: the lease must not decide
    settings.PROVIDER_READ_RETRIES = 0


def _delays(pks: list[int], model: Any = Order) -> list[float]:
    now = timezone.now()
    return [(at - now).total_seconds()
            for at in model.objects.filter(pk__in=pks).values_list("next_check_at", flat=True)]


@pytest.mark.parametrize("fault", ["http500", "garbage", "timeout_before"])
def test_a_failed_batch_backs_off_doubling_within_the_poll_bounds(
        fault, catalog, alice, sandbox, settings):
    settings.PROVIDER_READ_TIMEOUT = 0.3
    orders = _live_orders(catalog, alice, 3)
    pks = [o.pk for o in orders]
    sandbox.set_fault(fault, action="status", delay=1.0)

    seen = []
    for _ in range(5):
        _make_due(Order, pks)
        assert polling.poll_orders().errors == 1
        delays = _delays(pks)
        assert all(0 < d <= 60 for d in delays), delays  # never the 300 s lease
        seen.append(max(delays))
    # 10, 20, 40, then the 60 s cap (±20% jitter)
    assert 7 <= seen[0] <= 13 and 15 <= seen[1] <= 25 and 30 <= seen[2] <= 49
    assert seen[3] <= 60 and seen[4] <= 60 and seen[4] >= 47
    assert Provider.objects.get(pk=catalog.pk).poll_failures == 5
    assert Order.objects.filter(pk__in=pks, poll_failures__gt=0).count() == 0  # not their fault

    sandbox.clear_faults()
    _make_due(Order, pks)
    polling.poll_orders()
    assert Order.objects.filter(pk__in=pks, status=Order.Status.COMPLETED).count() == 3
    assert Provider.objects.get(pk=catalog.pk).poll_failures == 0


def test_the_per_order_error_backoff_stays_within_the_max_delay(catalog, alice, sandbox):
    _, bad = _live_orders(catalog, alice, 2)
    Order.objects.filter(pk=bad.pk).update(upstream_id=987_654_321)
    sandbox.set_fault("strict_lists", action="status")
    _make_due(Order, [bad.pk])

    polling.poll_orders()

    bad.refresh_from_db()
    assert bad.poll_failures == 1
    assert _delays([bad.pk]) and 0 < _delays([bad.pk])[0] <= 60


def test_a_failed_refill_batch_backs_off_within_the_poll_bounds(catalog, alice, sandbox):
    orders = _live_orders(catalog, alice, 3, upstream={"refill": True}, refill=True)
    _make_due(Order, [o.pk for o in orders])
    polling.poll_orders()
    for order in orders:
        refills.request_refill(alice, order.pk)
    assert refills.send_refills() == 3
    pks = list(Refill.objects.filter(order__in=orders).values_list("pk", flat=True))
    sandbox.set_fault("http500", action="refill_status")
    _make_due(Refill, pks)
    before = timezone.now()

    polling.poll_refills()

    assert all(0 < d <= 13 for d in _delays(pks, Refill))
    assert Refill.objects.filter(pk__in=pks, next_check_at__gt=before + timedelta(seconds=60)
                                 ).count() == 0
