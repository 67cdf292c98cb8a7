"""Refills and cancels: eligibility on the server, requests upstream in batches, refunds
only from what polling later sees."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import cancels, dispatch, polling, refills
from orders.errors import Refusal
from orders.models import Order, Refill
from orders.placing import place_order
from panel.models import LedgerEntry
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


def _placed(catalog, user, *, finished: bool, **service_fields) -> Order:
    service = make_service(catalog, "Default", **service_fields)
    order = place_order(user, service.pk, {"link": f"https://x.com/{service.pk}",
                                           "quantity": service.min_quantity})
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    if finished:
        Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
        polling.poll_orders()
        order.refresh_from_db()
        assert order.status == Order.Status.COMPLETED
    return order


def test_a_refill_is_sent_upstream_and_polled_to_its_end(catalog, alice, sandbox):
    order = _placed(catalog, alice, finished=True, upstream={"refill": True}, refill=True)

    refill = refills.request_refill(alice, order.pk)
    assert refills.send_refills() == 1
    refill.refresh_from_db()
    assert refill.status == Refill.Status.PENDING and refill.upstream_id
    Refill.objects.filter(pk=refill.pk).update(next_check_at=timezone.now())
    polling.poll_refills()

    refill.refresh_from_db()
    assert refill.status in (Refill.Status.COMPLETED, Refill.Status.IN_PROGRESS)
    assert not LedgerEntry.objects.filter(order_id=order.pk, kind="refund").exists()


@pytest.mark.parametrize("why", ["no_refill", "not_completed", "window_over", "pending",
                                 "someone_else"])
def test_refill_eligibility_is_checked_on_the_server(catalog, alice, bob, why):
    order = _placed(catalog, alice, finished=why != "not_completed",
                    upstream={"refill": True}, refill=why != "no_refill", refill_days=30)
    user = bob if why == "someone_else" else alice
    if why == "window_over":
        Order.objects.filter(pk=order.pk).update(finished_at=timezone.now() - timedelta(days=31))
    if why == "pending":
        refills.request_refill(alice, order.pk)

    with pytest.raises(Refusal) as excinfo:
        refills.request_refill(user, order.pk)

    expected = "Incorrect order ID" if why == "someone_else" else "Order not eligible for refill"
    assert excinfo.value.message == expected


def test_a_refill_window_of_zero_days_never_closes(catalog, alice):
    order = _placed(catalog, alice, finished=True, upstream={"refill": True}, refill=True,
                    refill_days=0)
    Order.objects.filter(pk=order.pk).update(finished_at=timezone.now() - timedelta(days=900))

    assert refills.request_refill(alice, order.pk).pk


def test_a_cancel_goes_upstream_and_the_refund_follows_the_status(catalog, alice, sandbox):
    sandbox.set_speed(600)  # orders stay in progress upstream
    order = _placed(catalog, alice, finished=False, upstream={"cancel": True}, cancel=True)

    cancels.request_cancel(alice, order.pk)
    assert not LedgerEntry.objects.filter(order_id=order.pk, kind="refund").exists()
    assert cancels.send_cancels() == 1
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
    polling.poll_orders()

    order.refresh_from_db()
    assert order.status in (Order.Status.CANCELED, Order.Status.PARTIAL)
    refund = LedgerEntry.objects.get(order_id=order.pk, kind="refund").amount
    assert Decimal(0) < refund <= order.charge
    with pytest.raises(Refusal, match="not eligible"):
        cancels.request_cancel(alice, order.pk)


def test_an_order_not_yet_sent_is_canceled_here_and_refunded_at_once(catalog, alice):
    service = make_service(catalog, "Default", upstream={"cancel": True}, cancel=True)
    order = place_order(alice, service.pk, {"link": "https://x.com/q",
                                            "quantity": service.min_quantity})

    cancels.request_cancel(alice, order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELED
    assert LedgerEntry.objects.get(order_id=order.pk, kind="refund").amount == order.charge
    assert not dispatch.dispatch_one(order.pk)  # and it is never sent


@pytest.mark.parametrize("why", ["no_cancel", "finished", "someone_else", "twice"])
def test_cancel_eligibility_is_checked_on_the_server(catalog, alice, bob, why, sandbox):
    if why != "finished":
        sandbox.set_speed(600)
    order = _placed(catalog, alice, finished=why == "finished", upstream={"cancel": True},
                    cancel=why != "no_cancel")
    if why == "twice":
        cancels.request_cancel(alice, order.pk)

    with pytest.raises(Refusal) as excinfo:
        cancels.request_cancel(bob if why == "someone_else" else alice, order.pk)

    expected = "Incorrect order ID" if why == "someone_else" else "Order not eligible for cancel"
    assert excinfo.value.message == expected


def test_a_refill_is_refused_when_the_route_upstream_does_not_refill(catalog, alice, client):
    from panel.models import ApiKey

    # We sell it with refill, but the upstream service the order was bought through has none.
    order = _placed(catalog, alice, finished=True, upstream={"refill": False}, refill=True)
    assert order.route is not None and not order.route.provider_service.refill
    key = ApiKey.issue(alice)[1]

    reply = client.post("/api/v2", {"key": key, "action": "refill", "order": order.pk}).json()
    with pytest.raises(Refusal) as excinfo:
        refills.request_refill(alice, order.pk)

    assert reply == {"error": "Order not eligible for refill"}
    assert excinfo.value.message == "Order not eligible for refill"
    assert not Refill.objects.filter(order=order).exists()
