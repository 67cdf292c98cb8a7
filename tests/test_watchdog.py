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
    settings.WATCHDOG_SUBMITTING_SECONDS = 600
    settings.WATCHDOG_QUEUED_MINUTES = 30
    settings.WATCHDOG_STALLED_HOURS = 24
    service = make_service(catalog, "Default", one_order_per_link=False)
    now = timezone.now()
    orders = {name: place_order(alice, service.pk, {"link": f"https://x.com/{name}",
                                                    "quantity": service.min_quantity})
              for name in ("sending", "queued", "stalled", "fresh")}
    Order.objects.filter(pk=orders["sending"].pk).update(  # its request went out
        status=Order.Status.SUBMITTING, submitted_at=now - timedelta(minutes=11), sent_to=catalog)
    Order.objects.filter(pk=orders["queued"].pk).update(next_check_at=now - timedelta(hours=1))
    Order.objects.filter(pk=orders["stalled"].pk).update(
        status=Order.Status.IN_PROGRESS, upstream_id=1, provider=catalog,
        last_progress_at=now - timedelta(hours=25))

    assert run_watchdog() == {"parked": 1, "requeued": 0, "queued": 1, "stalled": 1,
                              "refills": 0, "refills_flagged": 0}
    assert run_watchdog() == {"parked": 0, "requeued": 0, "queued": 0, "stalled": 0,
                              "refills": 0, "refills_flagged": 0}

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
        status=Order.Status.SUBMITTING, submitted_at=now - timedelta(minutes=11), sent_to=catalog)
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


# --- how long a send may stay SUBMITTING: derived from the longest it can take ---------------

def _submitting_since(order, seconds: float, sent_to=None) -> None:
    Order.objects.filter(pk=order.pk).update(
        status=Order.Status.SUBMITTING, submitted_at=timezone.now() - timedelta(seconds=seconds),
        sent_to=sent_to)


def test_a_dead_workers_send_is_parked_once_no_live_send_could_last_that_long(
        catalog, alice, settings):
    from orders.watchdog import SLACK_SECONDS, submitting_threshold

    settings.WATCHDOG_SUBMITTING_SECONDS = None
    settings.PROVIDER_CONNECT_TIMEOUT, settings.PROVIDER_READ_TIMEOUT = 5, 30
    settings.DISPATCH_BATCH_SECONDS = 60
    # The batch's time, one connect, the wait for headers and the reply's two reads after it.
    assert submitting_threshold() == timedelta(seconds=60 + 5 + 3 * 30 + SLACK_SECONDS)
    assert submitting_threshold() < timedelta(minutes=4)
    service = make_service(catalog, "Default", one_order_per_link=False)
    dead, alive = (place_order(alice, service.pk, {"link": f"https://x.com/{name}",
                                                   "quantity": service.min_quantity})
                   for name in ("dead", "alive"))
    threshold = submitting_threshold().total_seconds()
    _submitting_since(dead, threshold + 5, sent_to=catalog)
    _submitting_since(alive, threshold - 20, sent_to=catalog)

    assert run_watchdog()["parked"] == 1
    assert Order.objects.get(pk=dead.pk).status == Order.Status.NEEDS_ATTENTION
    assert Order.objects.get(pk=alive.pk).status == Order.Status.SUBMITTING

    settings.PROVIDER_READ_TIMEOUT = 10  # shorter timeouts: staff hear sooner
    assert submitting_threshold() == timedelta(seconds=60 + 5 + 30 + SLACK_SECONDS)
    settings.WATCHDOG_SUBMITTING_SECONDS = 600  # an explicit setting wins
    assert submitting_threshold() == timedelta(minutes=10)


@pytest.mark.parametrize("fault", ["trickle", "timeout_after", "latency"])
def test_no_send_outlasts_the_bound_the_watchdog_counts_on(fault, sandbox, catalog, alice,
                                                           settings):
    """Over HTTP against the sandbox: a reply that trickles in a byte at a time (no single
    wait trips the read timeout), one that never comes, one that comes late. Each `add`
    ends within longest_exchange_seconds, so the watchdog's threshold holds."""
    import time

    from orders.dispatch import dispatch_one
    from providers.client import longest_exchange_seconds

    settings.PROVIDER_CONNECT_TIMEOUT, settings.PROVIDER_READ_TIMEOUT = 0.5, 0.4
    sandbox.set_fault(fault, action="add", delay={"trickle": 0.15}.get(fault, 3.0))
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/slow",
                                            "quantity": service.min_quantity})

    started = time.monotonic()
    dispatch_one(order.pk)
    took = time.monotonic() - started

    assert took < longest_exchange_seconds(0.5, 0.4) + 0.5  # + the database work around it
    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION  # it may have been bought: staff decide


def test_a_dead_workers_claim_that_never_sent_goes_back_to_the_queue_and_out(
        sandbox, catalog, alice, settings):
    """A batch claims several orders and its worker dies before their turn: no request left
    for them (sent_to is set only right before one does), so they are sent again by
    themselves, not handed to staff; the order that was in flight is parked."""
    from orders import dispatch
    from orders.models import OrderEvent

    service = make_service(catalog, "Default", one_order_per_link=False)
    orders = [place_order(alice, service.pk, {"link": f"https://x.com/batch{n}",
                                              "quantity": service.min_quantity})
              for n in range(3)]
    token, ids = dispatch.claim_due()  # the worker claimed the batch…
    assert sorted(ids) == sorted(o.pk for o in orders)
    in_flight = orders[0]
    Order.objects.filter(pk=in_flight.pk).update(sent_to=catalog)  # …sent the first, and died
    settings.WATCHDOG_SUBMITTING_SECONDS = 0

    assert {k: v for k, v in run_watchdog().items() if k in ("parked", "requeued")} == {
        "parked": 1, "requeued": 2}

    assert Order.objects.get(pk=in_flight.pk).status == Order.Status.NEEDS_ATTENTION
    for order in orders[1:]:
        assert Order.objects.get(pk=order.pk).status == Order.Status.QUEUED
        assert OrderEvent.objects.filter(order=order, kind="requeued").exists()
        dispatch.send_isolated(order.pk, token)  # the dead worker's claim, if it woke: nothing
    assert sandbox.adds() == []
    assert dispatch.dispatch_due() == 2  # the next sweep sends them
    assert all(Order.objects.get(pk=o.pk).status == Order.Status.PENDING for o in orders[1:])
    assert len(sandbox.adds()) == 2
