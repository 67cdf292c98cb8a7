"""Cancels when the upstream misbehaves, against the sandbox provider over HTTP.

A cancel the upstream definitely did not take is asked again, with backoff, up to
CANCEL_MAX_ATTEMPTS times; then the refusal is written on the order (an event the customer
reads, a flag for staff) and the customer may ask again. A cancel whose outcome is unknown
may have reached the upstream: staff see it, and it is not sent again by itself. The refund
still comes only from the status polling sees."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import cancels, dispatch, polling
from orders.errors import Refusal
from orders.models import Order, OrderEvent
from orders.placing import place_order
from panel.models import LedgerEntry
from tests.conftest import make_service

pytestmark = pytest.mark.django_db

UNAVAILABLE = "Service temporarily unavailable"


@pytest.fixture
def live_order(catalog: Any, alice: Any, sandbox: Any) -> Order:
    sandbox.set_speed(600)  # orders stay in progress upstream
    service = make_service(catalog, "Default", upstream={"cancel": True}, cancel=True)
    order = place_order(alice, service.pk, {"link": "https://x.com/c",
                                            "quantity": service.min_quantity})
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status in Order.POLLED
    return order


def _make_cancel_due(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(cancel_due_at=timezone.now() - timedelta(seconds=1))


def _poll(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
    polling.poll_orders()
    order.refresh_from_db()


def _kinds(order: Order) -> list[str]:
    return list(OrderEvent.objects.filter(order=order).values_list("kind", flat=True))


def test_a_cancel_the_upstream_refused_once_is_asked_again_and_goes_through(
        live_order, alice, sandbox):
    cancels.request_cancel(alice, live_order.pk)
    sandbox.set_fault("error", action="cancel", message=UNAVAILABLE, times=1)

    assert cancels.send_cancels() == 1
    live_order.refresh_from_db()
    assert live_order.cancel_sent_at is None and live_order.cancel_attempts == 1
    assert UNAVAILABLE in live_order.cancel_error
    assert live_order.cancel_due_at > timezone.now()  # backoff: not at the very next sweep
    assert cancels.send_cancels() == 0
    _make_cancel_due(live_order)
    assert cancels.send_cancels() == 1

    _poll(live_order)
    assert live_order.status in (Order.Status.CANCELED, Order.Status.PARTIAL)
    assert LedgerEntry.objects.filter(order_id=live_order.pk, kind="refund").count() == 1
    assert _kinds(live_order).count("cancel_failed") == 1 and "cancel_sent" in _kinds(live_order)
    call_command("check_ledger")


def test_a_cancel_refused_every_time_is_reported_to_the_customer_and_staff_and_may_be_asked_again(
        live_order, alice, sandbox, settings):
    settings.CANCEL_MAX_ATTEMPTS = 3
    sandbox.set_fault("error", action="cancel", message=UNAVAILABLE)
    cancels.request_cancel(alice, live_order.pk)

    for _ in range(3):
        _make_cancel_due(live_order)
        assert cancels.send_cancels() == 1
    _make_cancel_due(live_order)
    assert cancels.send_cancels() == 0  # given up: no fourth request

    live_order.refresh_from_db()
    assert live_order.cancel_attempts == 3 and UNAVAILABLE in live_order.cancel_error
    refused = OrderEvent.objects.get(order=live_order, kind="cancel_refused")
    assert UNAVAILABLE in refused.message
    assert live_order.flagged_at is not None and "cancel" in live_order.flag_reason
    assert live_order.status in Order.POLLED  # nothing canceled, nothing refunded
    assert not LedgerEntry.objects.filter(order_id=live_order.pk, kind="refund").exists()
    # The customer may ask again, and this time the upstream takes it.
    sandbox.clear_faults()
    cancels.request_cancel(alice, live_order.pk)
    live_order.refresh_from_db()
    assert live_order.cancel_attempts == 0
    assert cancels.send_cancels() == 1
    _poll(live_order)
    assert live_order.status in (Order.Status.CANCELED, Order.Status.PARTIAL)
    call_command("check_ledger")


def test_a_cancel_whose_outcome_is_unknown_is_flagged_for_staff_and_not_resent(
        live_order, alice, sandbox, settings):
    settings.PROVIDER_READ_TIMEOUT = 0.5
    # The upstream cancels the order, then the reply never arrives.
    sandbox.set_fault("timeout_after", action="cancel", delay=2, times=1)
    cancels.request_cancel(alice, live_order.pk)

    assert cancels.send_cancels() == 1
    live_order.refresh_from_db()
    assert live_order.flagged_at is not None
    assert "cancel may have reached the upstream" in live_order.flag_reason
    assert live_order.cancel_sent_at is not None and live_order.cancel_error
    _make_cancel_due(live_order)
    assert cancels.send_cancels() == 0  # not resent by itself
    with pytest.raises(Refusal, match="not eligible"):
        cancels.request_cancel(alice, live_order.pk)

    _poll(live_order)  # polling finds out what happened, and the refund follows once
    assert live_order.status in (Order.Status.CANCELED, Order.Status.PARTIAL)
    assert LedgerEntry.objects.filter(order_id=live_order.pk, kind="refund").count() == 1
    call_command("check_ledger")


@pytest.mark.parametrize("fault", [None, "error", "timeout_after"])
def test_a_cancel_sweep_takes_the_same_number_of_queries_whatever_its_size(
        catalog, alice, sandbox, settings, fault):
    from decimal import Decimal

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from panel import ledger

    settings.PROVIDER_READ_TIMEOUT = 0.5
    ledger.deposit(alice.pk, Decimal("1000"))
    sandbox.set_speed(600)
    service = make_service(catalog, "Default", one_order_per_link=False,
                           upstream={"cancel": True}, cancel=True)
    counts = []
    for size in (2, 8):
        for i in range(size):
            order = place_order(alice, service.pk, {"link": f"https://x.com/{size}-{i}",
                                                    "quantity": service.min_quantity})
            assert dispatch.dispatch_one(order.pk)
            cancels.request_cancel(alice, order.pk)
        if fault:
            sandbox.set_fault(fault, action="cancel", delay=1, times=1)
        with CaptureQueriesContext(connection) as ctx:
            assert cancels.send_cancels() == size
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
