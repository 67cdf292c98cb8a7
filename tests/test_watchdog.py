"""The watchdog flags orders that stopped moving, and parks sends that never finished."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from orders.placing import place_order
from orders.watchdog import run_watchdog
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


def test_stuck_orders_are_flagged_or_parked(catalog, alice, settings):
    settings.WATCHDOG_SUBMITTING_MINUTES = 10
    settings.WATCHDOG_QUEUED_MINUTES = 30
    settings.WATCHDOG_STALLED_HOURS = 24
    service = make_service(catalog, "Default", one_order_per_link=False)
    now = timezone.now()
    orders = {name: place_order(alice, service.pk, {"link": f"https://x.com/{name}",
                                                    "quantity": service.min_quantity})
              for name in ("sending", "queued", "stalled", "fresh")}
    Order.objects.filter(pk=orders["sending"].pk).update(
        status=Order.Status.SUBMITTING, submitted_at=now - timedelta(minutes=11))
    Order.objects.filter(pk=orders["queued"].pk).update(next_check_at=now - timedelta(hours=1))
    Order.objects.filter(pk=orders["stalled"].pk).update(
        status=Order.Status.IN_PROGRESS, upstream_id=1, provider=catalog,
        last_progress_at=now - timedelta(hours=25))

    assert run_watchdog() == {"parked": 1, "queued": 1, "stalled": 1, "refills": 0,
                              "refills_flagged": 0}
    assert run_watchdog() == {"parked": 0, "queued": 0, "stalled": 0, "refills": 0,
                              "refills_flagged": 0}

    got = {name: Order.objects.get(pk=o.pk) for name, o in orders.items()}
    assert got["sending"].status == Order.Status.NEEDS_ATTENTION
    assert "outcome is unknown" in got["sending"].error
    assert got["queued"].flagged_at and "worker" in got["queued"].flag_reason
    assert got["stalled"].flagged_at and "no progress" in got["stalled"].flag_reason
    assert got["fresh"].flagged_at is None and got["fresh"].status == Order.Status.QUEUED


def test_every_move_of_the_watchdog_writes_the_orders_history(catalog, alice, settings):
    from orders.models import OrderEvent

    service = make_service(catalog, "Default", one_order_per_link=False)
    now = timezone.now()
    sending, queued, stalled = (place_order(alice, service.pk, {
        "link": f"https://x.com/{name}", "quantity": service.min_quantity})
        for name in ("sending", "queued", "stalled"))
    Order.objects.filter(pk=sending.pk).update(
        status=Order.Status.SUBMITTING, submitted_at=now - timedelta(minutes=11))
    Order.objects.filter(pk=queued.pk).update(next_check_at=now - timedelta(hours=1))
    Order.objects.filter(pk=stalled.pk).update(
        status=Order.Status.IN_PROGRESS, upstream_id=1, provider=catalog,
        last_progress_at=now - timedelta(hours=25))

    run_watchdog()

    history = dict(OrderEvent.objects.filter(order_id__in=[sending.pk, queued.pk, stalled.pk])
                   .values_list("order_id", "kind"))
    assert history == {sending.pk: "needs_attention", queued.pk: "flagged",
                       stalled.pk: "flagged"}
    messages = dict(OrderEvent.objects.values_list("order_id", "message"))
    assert "outcome is unknown" in messages[sending.pk]
    assert "worker" in messages[queued.pk] and "no progress" in messages[stalled.pk]
