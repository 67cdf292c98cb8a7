"""A drip-feed the panel runs itself: each run carries its share of the charge and passes the
cost guard, run n+1 goes out only after run n ended and the interval passed, and the parent
records progress, is flagged with a parked run and settles with the right status and refund.
Against the sandbox provider over HTTP (orders finish at their first status query)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch, polling, watchdog
from orders.models import Order, OrderEvent
from orders.placing import place_order
from panel import ledger
from panel.models import LedgerEntry
from providers.models import ProviderService
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checks_at_once(settings):
    settings.POLL_FIRST_DELAY = 0


@pytest.fixture
def dripfed(catalog):
    # The upstream service cannot drip-feed, so the panel runs the runs.
    return make_service(catalog, "Default", dripfeed=True, upstream={"dripfeed": False})


def place(user, service, runs: int = 3, interval: int = 10) -> Order:
    return place_order(user, service.pk, {"link": "https://instagram.com/p/drip",
                                          "quantity": service.min_quantity, "runs": runs,
                                          "interval": interval})


def runs_of(parent: Order) -> list[Order]:
    return list(Order.objects.filter(parent=parent).order_by("run_number"))


def purchases(sandbox) -> list[int]:
    return [a["order"] for a in sandbox.adds() if a["order"] is not None]


def time_passes(*orders: Order, minutes: int) -> None:
    """Move the clock forward for these orders: everything they remember happened earlier."""
    for order in orders:
        Order.objects.filter(pk=order.pk).update(
            submitted_at=timezone.now() - timedelta(minutes=minutes))


def test_runs_carry_shares_of_the_charge_that_add_up_to_it(sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=3)
    dispatch.dispatch_one(parent.pk)
    runs = runs_of(parent)
    parent.refresh_from_db()
    assert len(runs) == 3 and all(r.charge > 0 for r in runs)
    assert sum(r.charge for r in runs) == parent.charge
    assert sum(r.cost for r in runs) == parent.cost
    # The money itself is the parent's: one charge, no entry for a run.
    assert not LedgerEntry.objects.filter(order_id__in=[r.pk for r in runs]).exists()


def test_a_run_that_would_cost_more_than_its_share_is_not_bought(sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=2)
    upstream = dripfed.routes.get().provider_service
    ProviderService.objects.filter(pk=upstream.pk).update(cost_rate=upstream.cost_rate * 50)

    dispatch.dispatch_one(parent.pk)  # splits, and sends run 1 at once
    time_passes(*runs_of(parent), minutes=60)
    Order.objects.filter(parent=parent, status=Order.Status.QUEUED).update(
        next_check_at=timezone.now())
    dispatch.dispatch_due()

    assert purchases(sandbox) == []  # neither run was bought at a loss
    assert [r.status for r in runs_of(parent)] == [Order.Status.FAILED] * 2
    assert all("would cost" in r.error for r in runs_of(parent))
    parent.refresh_from_db()
    assert parent.status == Order.Status.CANCELED and parent.refunded == parent.charge
    assert ledger.mismatched_balances() == []


def test_the_next_run_waits_for_the_previous_one_to_end_and_the_interval(
        sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=3, interval=10)
    dispatch.dispatch_one(parent.pk)
    first, second, third = runs_of(parent)
    assert first.status == Order.Status.PENDING and len(purchases(sandbox)) == 1

    # The interval passes while run 1 is still live upstream: run 2 must not go out yet.
    Order.objects.filter(pk__in=[second.pk, third.pk], next_check_at__isnull=False).update(
        next_check_at=timezone.now() - timedelta(minutes=30))
    dispatch.dispatch_due()
    assert len(purchases(sandbox)) == 1

    # Run 1 ends early: run 2 waits for the interval since run 1 went out.
    polling.poll_orders()
    second.refresh_from_db()
    assert second.status == Order.Status.QUEUED and second.next_check_at > timezone.now()
    dispatch.dispatch_due()
    assert len(purchases(sandbox)) == 1

    # Once the interval has passed, it goes out.
    Order.objects.filter(pk=second.pk).update(next_check_at=timezone.now())
    dispatch.dispatch_due()
    assert len(purchases(sandbox)) == 2
    assert OrderEvent.objects.filter(order=parent, kind="drip_feed_next").exists()
    parent.refresh_from_db()
    assert parent.last_progress_at > timezone.now() - timedelta(minutes=1)


def test_a_long_run_does_not_make_the_parent_look_stalled(sandbox, dripfed, alice, settings):
    settings.WATCHDOG_STALLED_HOURS = 24
    parent = place(alice, dripfed, runs=2)
    dispatch.dispatch_one(parent.pk)
    Order.objects.filter(pk=parent.pk).update(
        last_progress_at=timezone.now() - timedelta(hours=25))

    watchdog.run_watchdog()

    parent.refresh_from_db()
    assert parent.flagged_at is None  # its live run is watched, not the parent


def test_a_parked_run_flags_its_parent(sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=2)
    sandbox.set_fault("http500", action="add")

    dispatch.dispatch_one(parent.pk)

    first = runs_of(parent)[0]
    parent.refresh_from_db()
    assert first.status == Order.Status.NEEDS_ATTENTION
    assert parent.flagged_at is not None and "run 1" in parent.flag_reason
    assert OrderEvent.objects.filter(order=parent, kind="flagged").exists()


def test_a_drip_feed_whose_every_run_failed_is_canceled_with_a_full_refund(
        sandbox, dripfed, alice):
    before = alice.balance
    parent = place(alice, dripfed, runs=2)
    sandbox.set_fault("error", action="add", message="Incorrect link")

    dispatch.dispatch_one(parent.pk)
    Order.objects.filter(parent=parent, status=Order.Status.QUEUED).update(
        next_check_at=timezone.now())
    dispatch.dispatch_due()

    parent.refresh_from_db()
    alice.refresh_from_db()
    assert [r.status for r in runs_of(parent)] == [Order.Status.FAILED] * 2
    assert parent.status == Order.Status.CANCELED
    assert parent.refunded == parent.charge and alice.balance == before  # all of it back
    assert parent.to_api_dict("USD")["status"] == "Canceled"


def test_a_partly_delivered_drip_feed_refunds_the_undelivered_runs_once(
        sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=2)
    dispatch.dispatch_one(parent.pk)
    polling.poll_orders()  # run 1 completes
    sandbox.set_fault("error", action="add", message="Incorrect link")
    Order.objects.filter(parent=parent, status=Order.Status.QUEUED).update(
        next_check_at=timezone.now())
    dispatch.dispatch_due()  # run 2 fails

    parent.refresh_from_db()
    second = runs_of(parent)[1]
    assert parent.status == Order.Status.PARTIAL
    assert parent.refunded == second.charge > Decimal(0)
    assert LedgerEntry.objects.filter(order_id=parent.pk, kind="refund").count() == 1
