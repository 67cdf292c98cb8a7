"""What staff settle by hand, and what the panel refuses to let them do by accident."""

from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch
from orders.models import Order
from orders.placing import place_order
from panel.models import LedgerEntry
from providers.client import OrderStatus, UpstreamStatus
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


def _refunds(order) -> list[Decimal]:
    return list(LedgerEntry.objects.filter(order_id=order.pk, kind="refund")
                .values_list("amount", flat=True))


def test_a_panel_run_drip_feed_with_an_unmeasured_partial_run_waits_for_staff(
        catalog, alice, staff_member):
    service = make_service(catalog, "Default", upstream={"dripfeed": False}, dripfeed=True)
    parent = place_order(alice, service.pk, {"link": "https://x.com/d", "quantity":
                                             service.min_quantity, "runs": 2, "interval": 5})
    dispatch.dispatch_one(parent.pk)
    Order.objects.filter(parent=parent).update(next_check_at=timezone.now())
    dispatch.dispatch_due()
    first, second = Order.objects.filter(parent=parent).order_by("run_number")
    first.apply_upstream_status(OrderStatus(UpstreamStatus.PARTIAL, None, 1, None, "USD"))
    second.apply_upstream_status(OrderStatus(UpstreamStatus.COMPLETED, None, 1, 0, "USD"))

    parent.refresh_from_db()
    assert parent.status == Order.Status.PARTIAL
    assert parent.flagged_at is not None and _refunds(parent) == []
    assert parent.refund_partial_by_hand(service.min_quantity, staff_member.pk)
    assert _refunds(parent) == [parent.charge / 2]


def test_a_package_partial_is_settled_with_an_amount_staff_decide(catalog, alice, staff_member):
    service = make_service(catalog, "Package")
    order = place_order(alice, service.pk, {"link": "https://x.com/pkg"})
    dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    order.apply_upstream_status(OrderStatus(UpstreamStatus.PARTIAL, None, 1, 40, "USD"))
    order.refresh_from_db()

    assert order.flagged_at is not None and _refunds(order) == []
    assert not order.refund_partial_by_hand(40, staff_member.pk)  # no units to measure by
    assert not order.refund_amount_by_hand(Decimal("1"), staff_member.pk, " ")
    assert order.refund_amount_by_hand(order.charge * 10, staff_member.pk, "half delivered")
    assert _refunds(order) == [order.charge]  # capped at what was paid
    assert not order.refund_amount_by_hand(Decimal("0.1"), staff_member.pk, "again")


def test_staff_cannot_fail_an_order_while_its_send_is_in_flight(catalog, alice, staff_member):
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/s",
                                            "quantity": service.min_quantity})
    assert dispatch.claim_one(order.pk)
    order.refresh_from_db()

    assert not order.fail_and_refund(staff_member.pk, "looks stuck")
    assert _refunds(order) == []


def test_a_purchase_that_lands_after_the_order_moved_on_is_flagged_not_lost(
        catalog, alice, staff_member):
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/late",
                                            "quantity": service.min_quantity})
    assert dispatch.claim_one(order.pk)
    order.refresh_from_db()
    Order.objects.filter(pk=order.pk).update(status=Order.Status.NEEDS_ATTENTION)

    dispatch._mark_sent(order, service.routes.get(), 777)

    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION and order.upstream_id is None
    assert order.flagged_at is not None and "777" in order.flag_reason
