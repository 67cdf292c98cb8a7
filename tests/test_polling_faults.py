"""Polling when one id spoils a batch: an upstream that answers a list of ids with one
top-level `{"error": …}` because one of them is unknown (the sandbox's `strict_lists`).

The batch is asked again in halves, down to the one id, so the others are updated in the
same sweep at a cost of about 2·log2(100) more requests; the bad id's error is that order's
(or refill's) own, recorded on it, and its next check is pushed out."""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import dispatch, polling, refills
from orders.models import Order, OrderEvent, Refill
from orders.placing import place_order
from panel import ledger
from tests.conftest import make_service

pytestmark = pytest.mark.django_db

UNKNOWN_UPSTREAM_ID = 987_654_321  # an order the upstream does not know (any more)


def _requests(caplog: Any, action: str) -> int:
    """HTTP requests the client made for `action`, from its one log record per request."""
    return sum(1 for r in caplog.records if getattr(r, "upstream_action", None) == action)


def _live_orders(catalog: Any, user: Any, count: int, **service_fields: Any) -> list[Order]:
    ledger.deposit(user.pk, Decimal("10000"))
    service = make_service(catalog, "Default", one_order_per_link=False, **service_fields)
    for i in range(count):
        place_order(user, service.pk, {"link": f"https://x.com/{i}",
                                       "quantity": service.min_quantity})
    assert dispatch.dispatch_due(limit=count) == count
    orders = list(Order.objects.filter(service=service).order_by("pk"))
    assert all(o.status == Order.Status.PENDING for o in orders)
    return orders


def _make_due(model: Any, pks: list[int]) -> None:
    model.objects.filter(pk__in=pks).update(next_check_at=timezone.now() - timedelta(seconds=1))


def test_one_unknown_id_does_not_block_the_other_99_orders_of_its_batch(
        catalog, alice, sandbox, caplog):
    orders = _live_orders(catalog, alice, 100)
    bad = orders[37]
    Order.objects.filter(pk=bad.pk).update(upstream_id=UNKNOWN_UPSTREAM_ID)
    sandbox.set_fault("strict_lists", action="status")
    _make_due(Order, [o.pk for o in orders])
    caplog.set_level(logging.INFO, logger="providers.client")
    before = timezone.now()

    stats = polling.poll_orders()

    others = Order.objects.filter(pk__in=[o.pk for o in orders]).exclude(pk=bad.pk)
    assert others.filter(status=Order.Status.COMPLETED).count() == 99
    bad.refresh_from_db()
    assert bad.status == Order.Status.PENDING
    assert bad.poll_failures == 1 and "Incorrect order ID" in bad.poll_error
    assert bad.next_check_at > before + polling.LEASE  # pushed out, past the lease
    # One request for the batch, then two per halving down to the one id.
    assert _requests(caplog, "status") == stats.requests <= 1 + 2 * math.ceil(math.log2(100))
    call_command("check_ledger")


def test_an_order_whose_status_checks_keep_failing_is_flagged_and_a_good_reply_clears_it(
        catalog, alice, sandbox, settings):
    settings.POLL_FLAG_AFTER_FAILURES = 3
    _, bad = _live_orders(catalog, alice, 2)
    real_upstream_id = bad.upstream_id
    Order.objects.filter(pk=bad.pk).update(upstream_id=UNKNOWN_UPSTREAM_ID)
    sandbox.set_fault("strict_lists", action="status")

    for _ in range(3):
        _make_due(Order, [bad.pk])
        polling.poll_orders()

    bad.refresh_from_db()
    assert bad.poll_failures == 3 and bad.flagged_at is not None
    assert "3 times" in bad.flag_reason and "Incorrect order ID" in bad.flag_reason
    assert OrderEvent.objects.filter(order=bad, kind="flagged").count() == 1
    # The order turns up again (staff fixed its upstream id): the next reply clears it.
    Order.objects.filter(pk=bad.pk).update(upstream_id=real_upstream_id)
    _make_due(Order, [bad.pk])
    polling.poll_orders()
    bad.refresh_from_db()
    assert bad.status == Order.Status.COMPLETED
    assert bad.poll_failures == 0 and bad.poll_error == ""
    call_command("check_ledger")


def test_an_error_about_the_account_is_not_bisected(catalog, alice, sandbox, caplog):
    orders = _live_orders(catalog, alice, 20)
    sandbox.set_fault("error", action="status", message="Invalid API key")
    _make_due(Order, [o.pk for o in orders])
    caplog.set_level(logging.INFO, logger="providers.client")

    stats = polling.poll_orders()

    assert _requests(caplog, "status") == 1 and stats.errors == 1
    assert not Order.objects.filter(pk__in=[o.pk for o in orders], poll_failures__gt=0).exists()


def test_one_unknown_refill_does_not_block_the_other_refill_statuses(
        catalog, alice, sandbox, caplog):
    orders = _live_orders(catalog, alice, 10, upstream={"refill": True}, refill=True)
    _make_due(Order, [o.pk for o in orders])
    polling.poll_orders()
    for order in orders:
        refills.request_refill(alice, order.pk)
    assert refills.send_refills() == 10
    sent = list(Refill.objects.filter(order__in=orders).order_by("pk"))
    assert all(r.status == Refill.Status.PENDING for r in sent)
    bad = sent[4]
    Refill.objects.filter(pk=bad.pk).update(upstream_id=UNKNOWN_UPSTREAM_ID)
    sandbox.set_fault("strict_lists", action="refill_status")
    _make_due(Refill, [r.pk for r in sent])
    caplog.set_level(logging.INFO, logger="providers.client")
    before = timezone.now()

    polling.poll_refills()

    others = Refill.objects.filter(pk__in=[r.pk for r in sent]).exclude(pk=bad.pk)
    assert others.filter(status=Refill.Status.COMPLETED).count() == 9
    bad.refresh_from_db()
    assert bad.status == Refill.Status.PENDING and "Refill not found" in bad.error
    assert bad.next_check_at > before + polling.LEASE
    assert _requests(caplog, "refill_status") <= 1 + 2 * math.ceil(math.log2(10))
    call_command("check_ledger")


def test_a_sweep_with_a_bad_id_takes_the_same_number_of_queries_whatever_its_size(
        catalog, alice, sandbox):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sandbox.set_fault("strict_lists", action="status")
    counts = []
    for size in (10, 40):
        orders = _live_orders(catalog, alice, size)
        Order.objects.filter(pk=orders[size // 2].pk).update(
            upstream_id=UNKNOWN_UPSTREAM_ID + size)
        _make_due(Order, [o.pk for o in orders])
        with CaptureQueriesContext(connection) as ctx:
            assert polling.poll_orders().orders == size
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
