"""Round trip: a second panel, configured with this panel as its upstream through the same
client, imports our catalog, sells a service, and carries an order to Completed and a
refill to done. Our client and our server must agree on every action."""

from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch, polling, refills
from orders.importing import import_services
from orders.models import Order, Refill, Service
from orders.placing import place_order
from panel.models import ApiKey
from providers.models import Provider
from providers.sync import check_balance, sync_catalog
from tests.conftest import make_customer, make_service


def _due_now() -> None:
    Order.objects.update(next_check_at=timezone.now())
    Refill.objects.filter(status__in=Refill.POLLED).update(next_check_at=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_a_second_panel_buys_from_us_end_to_end(live_server, sandbox):
    # Our side: the sandbox is our upstream, and we sell one of its services.
    ours = Provider(name="Sandbox", api_url=sandbox.url)
    ours.api_key = sandbox.key
    ours.save()
    assert sync_catalog(ours).ok
    sold = make_service(ours, "Default", upstream={"refill": True}, refill=True)
    reseller = make_customer("reseller", "50")
    _, key = ApiKey.issue(reseller, "second panel")

    # Their side: this panel is their upstream.
    upstream = Provider(name="Our panel", api_url=f"{live_server.url}/api/v2")
    upstream.api_key = key
    upstream.save()
    assert sync_catalog(upstream).ok
    assert check_balance(upstream) == Decimal("50")
    assert len(import_services(upstream)) == 1  # all we sell: the one service
    theirs = Service.objects.get(routes__provider_service__provider=upstream,
                                 routes__provider_service__upstream_id=sold.pk)
    assert theirs.refill and theirs.min_quantity == sold.min_quantity
    buyer = make_customer("buyer", "100")

    order = place_order(buyer, theirs.pk, {"link": "https://instagram.com/p/round",
                                           "quantity": theirs.min_quantity})
    assert dispatch.dispatch_one(order.pk)  # their panel buys from us over API v2
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    mine = Order.objects.get(pk=order.upstream_id)
    assert mine.user == reseller and mine.service == sold
    assert dispatch.dispatch_due() == 1  # we buy from the sandbox

    _due_now()
    polling.poll_orders()  # we learn Completed from the sandbox…
    _due_now()
    polling.poll_orders()  # …and they learn it from us
    order.refresh_from_db()
    mine.refresh_from_db()
    assert mine.status == Order.Status.COMPLETED
    assert order.status == Order.Status.COMPLETED
    assert order.upstream_charge == mine.charge

    refill = refills.request_refill(buyer, order.pk)
    assert refills.send_refills() == 1  # theirs reaches us; then ours reaches the sandbox
    assert refills.send_refills() == 1
    for _ in range(2):
        _due_now()
        polling.poll_refills()
    refill.refresh_from_db()
    assert refill.status == Refill.Status.COMPLETED
    assert Refill.objects.get(order=mine).status == Refill.Status.COMPLETED
    reseller.refresh_from_db()
    assert reseller.balance == Decimal("50") - mine.charge
