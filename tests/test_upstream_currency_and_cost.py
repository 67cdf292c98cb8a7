"""Upstreams' currency and charge are checked against what the panel believes about them:
a provider that reports money in another currency than configured is not bought from until
an admin clears it, and every polled order records what the upstream really charged compared
with the cost snapshot it was sold against."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from orders import dispatch, polling
from orders.errors import INCORRECT_SERVICE, Refusal
from orders.models import Order
from orders.placing import place_order
from panel.money import quantize_money
from providers.models import Provider
from providers.sync import check_balances
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-12345678")


def _place_and_send(user, service, link: str = "https://x.com/cost") -> Order:
    order = place_order(user, service.pk, {"link": link, "quantity": service.min_quantity})
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    return order


def _poll(*orders: Order) -> None:
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        next_check_at=timezone.now() - timedelta(seconds=1))
    polling.poll_orders()
    for order in orders:
        order.refresh_from_db()


def test_a_balance_in_another_currency_pauses_buying_and_alerts_once(catalog, alice, boss):
    service = make_service(catalog, "Default")
    # The admin believes this provider bills in EUR; the sandbox reports its balance in USD.
    Provider.objects.filter(pk=catalog.pk).update(currency="EUR")

    check_balances()
    check_balances()

    catalog.refresh_from_db()
    assert catalog.buying_paused_at is not None
    assert "USD" in catalog.currency_mismatch and "EUR" in catalog.currency_mismatch
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["boss@example.com"]
    assert "Sandbox" in mail.outbox[0].subject and "USD" in mail.outbox[0].body
    route = service.routes.select_related("provider_service__provider").get()
    assert not route.is_usable()
    with pytest.raises(Refusal) as refused:
        place_order(alice, service.pk, {"link": "https://x.com/paused",
                                        "quantity": service.min_quantity})
    assert refused.value.message == INCORRECT_SERVICE


def test_a_balance_in_the_configured_currency_keeps_buying(catalog, boss):
    Provider.objects.filter(pk=catalog.pk).update(currency="usd")  # case is not a mismatch

    check_balances()

    catalog.refresh_from_db()
    assert catalog.buying_paused_at is None and catalog.currency_mismatch == ""
    assert mail.outbox == []


def test_a_status_in_another_currency_pauses_buying_from_that_provider(catalog, alice, boss):
    service = make_service(catalog, "Default")
    order = _place_and_send(alice, service)
    Provider.objects.filter(pk=catalog.pk).update(currency="EUR")

    _poll(order)

    catalog.refresh_from_db()
    assert order.upstream_currency == "USD"
    assert catalog.buying_paused_at is not None and "USD" in catalog.currency_mismatch
    assert len(mail.outbox) == 1
    # In another currency the conversion rate means nothing: no difference is made up.
    assert order.cost_difference is None
    with pytest.raises(Refusal):
        place_order(alice, service.pk, {"link": "https://x.com/next",
                                        "quantity": service.min_quantity})


def test_an_admin_resumes_buying_from_a_paused_provider(catalog, alice, boss, client):
    service = make_service(catalog, "Default")
    Provider.objects.filter(pk=catalog.pk).update(currency="EUR")
    check_balances()
    # The admin finds the provider does bill in USD, corrects it and resumes buying.
    Provider.objects.filter(pk=catalog.pk).update(currency="USD")
    client.force_login(boss)
    page = client.get(f"/admin/providers/provider/{catalog.pk}/change/").content.decode()
    assert "its balance was reported in USD, but the provider is configured in EUR" in page

    response = client.post("/admin/providers/provider/", {
        "action": "resume_buying", "_selected_action": [catalog.pk]})

    assert response.status_code == 302
    catalog.refresh_from_db()
    assert catalog.buying_paused_at is None and catalog.currency_mismatch == ""
    order = _place_and_send(alice, service)
    assert order.provider_id == catalog.pk


def test_polling_records_what_the_upstream_charged_above_the_cost_snapshot(
        catalog, alice, sandbox, settings):
    # The panel sells in EUR; the provider bills in USD at 0.9 EUR per USD.
    settings.PANEL_CURRENCY = "EUR"
    Provider.objects.filter(pk=catalog.pk).update(rate_to_panel=Decimal("0.9"))
    catalog.refresh_from_db()
    service = make_service(catalog, "Default", one_order_per_link=False)
    upstream = service.routes.get().provider_service
    in_progress = place_order(alice, service.pk, {"link": "https://x.com/a",
                                                  "quantity": service.min_quantity})
    partial = place_order(alice, service.pk, {"link": "https://x.com/b",
                                              "quantity": service.min_quantity})
    # The upstream raised its price after our last catalog sync: it charges more than the
    # cost we sold against.
    sandbox.update_service(upstream.upstream_id, rate=str(upstream.cost_rate * 2))
    for order in (in_progress, partial):
        assert dispatch.dispatch_one(order.pk)
        order.refresh_from_db()
    sandbox.force_order(in_progress.upstream_id, status="In progress", remains=1)
    sandbox.force_order(partial.upstream_id, status="Partial", remains=1)

    _poll(in_progress, partial)

    for order in (in_progress, partial):  # the batch UPDATE and the refunding path alike
        assert order.upstream_charge is not None and order.upstream_currency == "USD"
        paid = quantize_money(order.upstream_charge * Decimal("0.9"))
        assert order.cost_difference == paid - order.cost
        assert order.cost_difference > 0
    assert in_progress.status == Order.Status.IN_PROGRESS
    assert partial.status == Order.Status.PARTIAL


def test_a_cost_matching_the_snapshot_records_no_difference(catalog, alice):
    service = make_service(catalog, "Default")
    order = _place_and_send(alice, service)

    _poll(order)

    assert order.status == Order.Status.COMPLETED
    assert order.cost_difference == Decimal(0)


def test_a_run_the_panel_drip_feeds_is_measured_against_its_share_of_the_parent_cost(
        catalog, alice, sandbox):
    service = make_service(catalog, "Default", dripfeed=True, upstream={"dripfeed": False})
    upstream = service.routes.get().provider_service
    parent = place_order(alice, service.pk, {"link": "https://x.com/drip", "runs": 2,
                                             "interval": 1, "quantity": service.min_quantity})
    sandbox.update_service(upstream.upstream_id, rate=str(upstream.cost_rate * 3))
    assert dispatch.dispatch_one(parent.pk)  # no route drip-feeds: the panel runs it
    first = Order.objects.get(parent=parent, run_number=1)
    assert first.upstream_id is not None
    assert first.cost == sum(r.cost for r in Order.objects.filter(parent=parent)) / 2

    _poll(first)

    first.refresh_from_db()
    assert first.cost_difference == quantize_money(first.upstream_charge) - first.cost
    # The run's cost share plus the difference is what the upstream really charged for it.
    assert first.cost + first.cost_difference == quantize_money(first.upstream_charge)


def test_a_batch_in_another_currency_still_takes_a_constant_number_of_queries(
        catalog, alice, boss):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from panel import ledger
    from providers.client import OrderStatus, UpstreamStatus

    ledger.deposit(alice.pk, Decimal("10000"))
    service = make_service(catalog, "Default", one_order_per_link=False)
    counts = []
    for size in (10, 100):
        Provider.objects.filter(pk=catalog.pk).update(buying_paused_at=None, currency="USD")
        orders = [place_order(alice, service.pk, {"link": f"https://x.com/{size}-{i}",
                                                  "quantity": service.min_quantity})
                  for i in range(size)]
        dispatch.dispatch_due(limit=size)
        Provider.objects.filter(pk=catalog.pk).update(currency="EUR")
        chunk = list(Order.objects.filter(pk__in=[o.pk for o in orders])
                     .values_list("pk", "upstream_id"))
        replies = {upstream_id: OrderStatus(UpstreamStatus.IN_PROGRESS, Decimal("1"), 5, 3,
                                            "USD") for _, upstream_id in chunk}
        with CaptureQueriesContext(connection) as ctx:
            assert polling.apply_replies(chunk, replies) == size
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
    assert len(mail.outbox) == 2  # paused (and alerted) once per batch, not once per order
