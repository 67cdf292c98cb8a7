"""Quirk 1 of issue 14: an upstream whose `remains` is "0" until someone sets it, on live
orders and on a Partial without a count (the sandbox's `zero_remains`).

A Partial whose remains is 0, missing, or not below the quantity contradicts itself: the
order is flagged for staff with the money held, never settled with a silent zero refund.
End to end: placing, dispatch and polling through the real client and the sandbox over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import dispatch, polling
from orders.models import Order, Service, ServiceType
from orders.placing import place_order
from panel.models import LedgerEntry
from providers.client import OrderStatus, UpstreamStatus
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checks_at_once(settings):
    settings.POLL_FIRST_DELAY = 0


def _make_due(*orders: Order) -> None:
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        next_check_at=timezone.now() - timedelta(seconds=1))


def _refunds(order: Order) -> list[Decimal]:
    return list(LedgerEntry.objects.filter(order_id=order.pk, kind="refund")
                .values_list("amount", flat=True))


def _sent(catalog, user, quantity: int = 1000, **service_fields) -> Order:
    service = make_service(catalog, "Default", **service_fields)
    order = place_order(user, service.pk, {"link": "https://x.com/zero", "quantity": quantity})
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    return order


def test_a_partial_reported_with_remains_zero_is_flagged_with_the_money_held(
        catalog, alice, sandbox, staff_member):
    sandbox.set_speed(600)  # the order stays live until the upstream is told otherwise
    sandbox.set_quirk("zero_remains")
    order = _sent(catalog, alice)
    _make_due(order)
    polling.poll_orders()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and order.remains == 0  # live, "0" as said

    # The upstream's own count is 400, but it reports the Partial with remains "0".
    sandbox.force_order(order.upstream_id, status="Partial", remains=400)
    _make_due(order)
    polling.poll_orders()

    order.refresh_from_db()
    assert order.status == Order.Status.PARTIAL
    assert _refunds(order) == [] and order.refunded == 0  # not a silent zero refund either
    assert order.flagged_at is not None
    assert "unknown" in order.flag_reason and "remains 0" in order.flag_reason
    assert order.remains is None  # the live order's "0" is no count of what is missing
    assert order.to_api_dict("USD")["status"] == "Partial"
    # Staff look upstream and settle it by hand, once.
    assert order.refund_partial_by_hand(400, staff_member.pk)
    assert _refunds(order) == [order.undelivered_share(400)]
    assert not order.refund_partial_by_hand(400, staff_member.pk)
    call_command("check_ledger")


@pytest.mark.parametrize("remains", [1000, 5000, "", "Unknown"],
                         ids=["all", "more-than-ordered", "missing", "unknown"])
def test_a_partial_with_remains_not_below_the_quantity_or_missing_is_flagged(
        catalog, alice, sandbox, remains):
    order = _sent(catalog, alice)
    sandbox.force_order(order.upstream_id, status="Partial", remains=remains)
    _make_due(order)

    polling.poll_orders()

    order.refresh_from_db()
    assert order.status == Order.Status.PARTIAL
    assert _refunds(order) == []
    assert order.flagged_at is not None and "refund by hand" in order.flag_reason
    call_command("check_ledger")


def test_a_believable_partial_still_refunds_at_once(catalog, alice, sandbox):
    order = _sent(catalog, alice)
    sandbox.force_order(order.upstream_id, status="Partial", remains=250)
    _make_due(order)

    polling.poll_orders()

    order.refresh_from_db()
    assert order.status == Order.Status.PARTIAL and order.flagged_at is None
    assert _refunds(order) == [order.undelivered_share(250)]


def test_a_drip_feed_run_ending_partial_with_remains_zero_flags_the_drip_feed(
        catalog, alice, sandbox):
    sandbox.set_quirk("zero_remains")
    service = make_service(catalog, "Default", dripfeed=True, upstream={"dripfeed": False})
    parent = place_order(alice, service.pk, {"link": "https://x.com/drip", "runs": 2,
                                             "interval": 10,
                                             "quantity": service.min_quantity * 2})
    dispatch.dispatch_one(parent.pk)  # the panel runs it: run 1 goes out at once
    first = Order.objects.get(parent=parent, run_number=1)
    assert first.status == Order.Status.PENDING
    sandbox.force_order(first.upstream_id, status="Partial", remains=service.min_quantity)
    _make_due(first)
    polling.poll_orders()
    # Run 2 goes out once the interval has passed, and completes.
    Order.objects.filter(pk=first.pk).update(submitted_at=timezone.now() - timedelta(hours=1))
    Order.objects.filter(parent=parent, run_number=2).update(next_check_at=timezone.now())
    dispatch.dispatch_due()
    second = Order.objects.get(parent=parent, run_number=2)
    _make_due(second)
    polling.poll_orders()

    parent.refresh_from_db()
    assert parent.status == Order.Status.PARTIAL  # not Completed: something is missing
    assert parent.flagged_at is not None and "unknown remains" in parent.flag_reason
    assert _refunds(parent) == []
    call_command("check_ledger")


@pytest.mark.parametrize(("remains", "counted"), [
    (1, 1), (999, 999), (None, None), (0, None), (1000, None),
])
def test_only_a_count_between_nothing_and_everything_is_a_partial_count(remains, counted):
    order = Order(quantity=1000, charged_units=1000, params={},
                  service=Service(type=ServiceType.DEFAULT))
    reply = OrderStatus(UpstreamStatus.PARTIAL, None, None, remains, None)
    assert order.partial_remains(reply) == counted
