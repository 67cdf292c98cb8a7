"""Polling: batches of 100 per provider, backoff, and refunds that happen once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch, polling
from orders.models import Order
from orders.placing import place_order
from panel.ledger import mismatched_balances
from panel.models import LedgerEntry
from providers.client import OrderStatus, UpstreamStatus
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def live_order(catalog, alice):
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/live", "quantity": 1000})
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    return order


def _make_due(*orders: Order) -> None:
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        next_check_at=timezone.now() - timedelta(seconds=1))


def _refunds(order: Order) -> list[Decimal]:
    return list(LedgerEntry.objects.filter(order_id=order.pk, kind="refund")
                .values_list("amount", flat=True))


def test_completed_orders_record_start_count_and_charge(live_order, sandbox):
    _make_due(live_order)

    stats = polling.poll_orders()

    live_order.refresh_from_db()
    assert stats.requests == 1 and stats.changed == 1
    assert live_order.status == Order.Status.COMPLETED
    assert live_order.remains == 0 and live_order.start_count is not None
    assert live_order.upstream_charge is not None and live_order.finished_at is not None
    assert _refunds(live_order) == []


def test_partial_refunds_the_undelivered_share_of_what_was_paid_once(live_order, sandbox):
    sandbox.force_order(live_order.upstream_id, status="Partial", remains=250)
    _make_due(live_order)

    polling.poll_orders()
    _make_due(live_order)  # a second poll (it should not even be asked) changes nothing
    polling.poll_orders()

    live_order.refresh_from_db()
    assert live_order.status == Order.Status.PARTIAL
    assert _refunds(live_order) == [(live_order.charge * 250 / 1000).quantize(Decimal("0.00001"))]
    assert live_order.refunded == _refunds(live_order)[0]
    assert mismatched_balances() == []


def test_canceled_refunds_the_whole_charge_once(live_order, sandbox):
    sandbox.force_order(live_order.upstream_id, status="Canceled")
    _make_due(live_order)

    polling.poll_orders()

    live_order.refresh_from_db()
    assert live_order.status == Order.Status.CANCELED
    assert _refunds(live_order) == [live_order.charge]


@pytest.mark.parametrize("remains", [
    0,      # what the client makes of a negative (over-delivered) remains, or "0" unset
    5000,   # more than ordered
    1000,   # all of it: nothing was delivered, yet not Canceled
])
def test_odd_remains_hold_the_money_for_staff_who_never_refund_more_than_was_paid(
        live_order, staff_member, remains):
    live_order.apply_upstream_status(
        OrderStatus(UpstreamStatus.PARTIAL, Decimal("9"), 10, remains, "USD"))

    live_order.refresh_from_db()
    assert _refunds(live_order) == [] and live_order.flagged_at is not None
    assert live_order.refund_partial_by_hand(remains, staff_member.pk) == (remains > 0)
    assert sum(_refunds(live_order), Decimal(0)) <= live_order.charge
    assert mismatched_balances() == []


def test_partial_with_unknown_remains_is_flagged_for_staff_not_refunded(live_order):
    live_order.apply_upstream_status(OrderStatus(UpstreamStatus.PARTIAL, None, None, None, None))

    live_order.refresh_from_db()
    assert live_order.status == Order.Status.PARTIAL
    assert _refunds(live_order) == []
    assert live_order.flagged_at is not None and "unknown" in live_order.flag_reason


def test_terminal_orders_stay_terminal(live_order):
    live_order.apply_upstream_status(OrderStatus(UpstreamStatus.COMPLETED, None, 1, 0, "USD"))
    live_order.refresh_from_db()

    changed = live_order.apply_upstream_status(
        OrderStatus(UpstreamStatus.CANCELED, None, 1, 1000, "USD"))

    live_order.refresh_from_db()
    assert not changed and live_order.status == Order.Status.COMPLETED
    assert _refunds(live_order) == []


def test_statuses_are_asked_in_batches_of_100_per_provider(catalog, alice, sandbox):
    from panel import ledger

    ledger.deposit(alice.pk, Decimal("10000"))
    service = make_service(catalog, "Default", one_order_per_link=False)
    orders = [place_order(alice, service.pk, {"link": f"https://x.com/{i}",
                                              "quantity": service.min_quantity})
              for i in range(250)]
    assert dispatch.dispatch_due(limit=300) == 250
    _make_due(*orders)

    stats = polling.poll_orders()

    assert stats.orders == 250
    assert stats.requests == 3  # ceil(250 / 100)
    assert Order.objects.filter(status=Order.Status.COMPLETED).count() == 250


def test_a_batch_takes_the_same_number_of_queries_whatever_its_size(
        catalog, alice, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from panel import ledger

    ledger.deposit(alice.pk, Decimal("10000"))
    service = make_service(catalog, "Default", one_order_per_link=False)
    counts = []
    for size in (10, 100):
        orders = [place_order(alice, service.pk, {"link": f"https://x.com/{size}-{i}",
                                                  "quantity": service.min_quantity})
                  for i in range(size)]
        dispatch.dispatch_due(limit=size)
        replies = {o.upstream_id: OrderStatus(UpstreamStatus.IN_PROGRESS, None, 5, 3, "USD")
                   for o in Order.objects.filter(pk__in=[o.pk for o in orders])}
        chunk = list(Order.objects.filter(pk__in=[o.pk for o in orders])
                     .values_list("pk", "upstream_id"))
        with CaptureQueriesContext(connection) as ctx:
            assert polling.apply_replies(chunk, replies) == size
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_check_delay_backs_off_with_age_and_jitters(settings):
    settings.POLL_FIRST_DELAY, settings.POLL_MAX_DELAY = 60, 3600

    young = [polling.check_delay(timedelta(minutes=1)).total_seconds() for _ in range(50)]
    old = [polling.check_delay(timedelta(hours=5)).total_seconds() for _ in range(50)]
    ancient = [polling.check_delay(timedelta(days=30)).total_seconds() for _ in range(50)]

    assert all(48 <= s <= 72 for s in young)
    assert all(1440 <= s <= 2160 for s in old)
    assert all(2880 <= s <= 4320 for s in ancient)
    assert len(set(young)) > 1  # jitter


def test_every_status_the_upstream_reports_is_written_in_the_orders_history(
        sandbox, catalog, alice, settings):
    from orders.dispatch import dispatch_one
    from orders.models import OrderEvent
    from orders.polling import poll_orders

    settings.POLL_FIRST_DELAY = 0
    service = make_service(catalog, "Default", one_order_per_link=False)
    orders = [place_order(alice, service.pk, {"link": f"https://x.com/h{n}",
                                              "quantity": service.min_quantity})
              for n in range(3)]
    for order in orders:
        dispatch_one(order.pk)

    poll_orders()  # the sandbox finishes orders at their first status query

    for order in orders:
        kinds = list(OrderEvent.objects.filter(order=order).values_list("kind", "message"))
        assert ("status", "the upstream reports it Completed") in kinds, kinds
    assert poll_orders().orders == 0  # nothing due: no more history
    assert OrderEvent.objects.filter(kind="status").count() == 3
