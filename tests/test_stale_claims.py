"""A send goes out only from the claim that is current: a stale batch claim buys nothing, and one
order's failure never abandons the rest of its batch.

Against the sandbox provider over HTTP, with real threads on real PostgreSQL.
"""

from __future__ import annotations

import threading
import time

import pytest

from orders import dispatch, watchdog
from orders.models import Order, OrderEvent
from orders.placing import place_order
from providers.models import Provider
from tests.conftest import make_service

pytestmark = pytest.mark.django_db(transaction=True)

LATENCY = 2.0  # each `add` takes this long at the sandbox


def in_thread(target, *args) -> threading.Thread:
    """A worker thread with its own database connection, closed when it ends."""
    from django.db import connection

    def run() -> None:
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def adds_for(sandbox, link: str) -> list[dict]:
    return [a for a in sandbox.adds() if a["params"].get("link") == link]


def place(user, service, n: int) -> Order:
    return place_order(user, service.pk, {"link": f"https://instagram.com/p/claim{n}",
                                          "quantity": service.min_quantity})


def test_a_stale_batch_claim_cannot_buy_an_order_sent_again_meanwhile(
        sandbox, catalog, alice, settings):
    """Slow upstream + watchdog + the stale worker, interleaved as in production: worker 1
    claims [first, tail] and is slow on `first`; the watchdog puts the never-sent tail back in
    the queue; worker 2 buys it (slowly); then worker 1 reaches its stale claim of the tail."""
    service = make_service(catalog, "Default")
    first, tail = place(alice, service, 1), place(alice, service, 2)
    sandbox.set_fault("latency", action="add", delay=LATENCY)

    worker_1 = in_thread(dispatch.dispatch_due)
    deadline = time.monotonic() + 5
    while Order.objects.filter(status=Order.Status.SUBMITTING).count() < 2:
        assert time.monotonic() < deadline, "worker 1 never claimed both orders"
        time.sleep(0.02)
    time.sleep(LATENCY / 4)  # worker 1's request for `first` is on its way

    settings.WATCHDOG_SUBMITTING_SECONDS = 0  # the tail has "waited too long"
    watchdog.run_watchdog()
    tail.refresh_from_db()
    # No request for the tail ever left under worker 1's claim: it goes back to the queue
    # by itself (one that may have been bought is parked for staff instead).
    assert tail.status == Order.Status.QUEUED and tail.claim_token is None
    worker_2 = in_thread(dispatch.dispatch_one, tail.pk)
    worker_1.join(timeout=20)
    worker_2.join(timeout=20)
    assert not worker_1.is_alive() and not worker_2.is_alive()

    assert len(adds_for(sandbox, tail.link)) == 1  # bought once, by worker 2
    assert len(adds_for(sandbox, first.link)) == 1
    tail.refresh_from_db()
    assert tail.status == Order.Status.PENDING and tail.upstream_id is not None


def test_one_broken_provider_key_does_not_abandon_the_batch(
        sandbox, catalog, alice, settings):
    """A provider key that no longer decrypts (a rotation gone wrong) fails before anything is
    sent: that order goes back to the queue with the reason, never to the unknown-outcome
    queue, and the other orders of the batch are sent."""
    from providers.sync import sync_catalog
    from tests.conftest import make_provider

    broken = make_provider(sandbox, name="Rotated")
    assert sync_catalog(broken).ok
    healthy = make_service(catalog, "Default")
    victim = make_service(broken, "Default")
    order_broken = place(alice, victim, 10)
    order_ok = place(alice, healthy, 11)
    Provider.objects.filter(pk=broken.pk).update(api_key_encrypted="not-a-fernet-token")

    assert dispatch.dispatch_due() == 2

    order_broken.refresh_from_db()
    order_ok.refresh_from_db()
    assert order_ok.status == Order.Status.PENDING
    assert order_broken.status == Order.Status.QUEUED
    assert order_broken.next_check_at is not None and order_broken.claim_token is None
    assert "not sent" in order_broken.error
    assert OrderEvent.objects.filter(order=order_broken, kind="requeued").exists()
    assert adds_for(sandbox, order_broken.link) == []
    settings.WATCHDOG_SUBMITTING_SECONDS = 0
    assert watchdog.run_watchdog()["parked"] == 0  # nothing left stranded in SUBMITTING


def test_a_batch_stops_claiming_time_and_puts_the_rest_back_unsent(
        sandbox, catalog, alice, settings):
    service = make_service(catalog, "Default")
    orders = [place(alice, service, 20 + n) for n in range(3)]
    settings.DISPATCH_BATCH_SECONDS = 0.5
    sandbox.set_fault("latency", action="add", delay=1.0)

    dispatch.dispatch_due()

    statuses = [Order.objects.get(pk=o.pk).status for o in orders]
    assert statuses[0] == Order.Status.PENDING
    assert statuses[1:] == [Order.Status.QUEUED, Order.Status.QUEUED]
    assert sum(len(adds_for(sandbox, o.link)) for o in orders) == 1
    assert OrderEvent.objects.filter(order_id=orders[2].pk, kind="requeued").exists()
