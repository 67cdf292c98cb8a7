"""An upstream with drip-feed rules of its own (the sandbox's `dripfeed_rules` quirk): its
catalog says it drip-feeds, but it accepts intervals of 10, 20 … 60 minutes only, refusing
others with "Request Invalid", and it charges one run where the panel paid for all of them.

The panel runs a refused drip-feed itself instead of failing the order, and remembers that
the route cannot drip-feed; the charge difference of an accepted one shows in the cost
cross-check (Order.cost_difference). End to end: the real client and the sandbox over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from orders import dispatch, polling
from orders.models import Order, OrderEvent, Route
from orders.placing import place_order
from panel.money import quantize_money
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def picky_upstream(sandbox, settings):
    settings.POLL_FIRST_DELAY = 0
    sandbox.set_quirk("dripfeed_rules")


@pytest.fixture
def dripfed(catalog):
    # The upstream service's catalog entry says it drip-feeds.
    return make_service(catalog, "Default", dripfeed=True, upstream={"dripfeed": True})


def place(user, service, *, runs: int, interval: int, link: str = "https://x.com/drip") -> Order:
    return place_order(user, service.pk, {"link": link, "quantity": service.min_quantity,
                                          "runs": runs, "interval": interval})


def sent(sandbox) -> list[dict]:
    return [a["params"] for a in sandbox.adds()]


def poll_all() -> None:
    Order.objects.filter(status__in=Order.POLLED).update(
        next_check_at=timezone.now() - timedelta(seconds=1))
    polling.poll_orders()


def test_the_sandbox_refuses_intervals_outside_its_rules(sandbox):
    service = next(s for s in sandbox.services() if s["dripfeed"])

    def add(interval: int) -> dict:
        return requests.post(sandbox.url, timeout=5, data={
            "key": sandbox.key, "action": "add", "service": service["service"],
            "link": f"https://x.com/{interval}", "quantity": service["min"], "runs": 3,
            "interval": interval}).json()

    assert add(15) == {"error": "Request Invalid"}
    accepted = add(10)
    order = sandbox.order(accepted["order"])
    assert order["quantity"] == 3 * int(service["min"])  # all three runs are delivered…
    one_run = quantize_money(Decimal(service["rate"]) * int(service["min"]) / 1000)
    assert Decimal(order["charge"]) == one_run  # …and one is paid for


def test_a_refused_drip_feed_is_run_by_the_panel_and_the_route_remembered(
        sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=3, interval=15)

    dispatch.dispatch_one(parent.pk)

    parent.refresh_from_db()
    route = Route.objects.get(service=dripfed)
    assert route.dripfeed_refused_at is not None and "Request Invalid" in route.dripfeed_refusal
    assert parent.status == Order.Status.IN_PROGRESS and parent.refunded == 0
    runs = list(Order.objects.filter(parent=parent).order_by("run_number"))
    assert len(runs) == 3 and sum(r.charge for r in runs) == parent.charge
    assert runs[0].status == Order.Status.PENDING and runs[0].upstream_id
    # Asked once with runs/interval (refused), then run 1 alone, without them.
    first, second = sent(sandbox)
    assert (first["runs"], first["interval"]) == ("3", "15")
    assert "runs" not in second and second["quantity"] == str(dripfed.min_quantity)
    assert OrderEvent.objects.filter(order=parent, kind="dripfeed_refused").exists()

    # The runs go out one after another; the parent settles Completed, nothing refunded.
    for _ in range(3):
        poll_all()
        Order.objects.filter(parent=parent, status=Order.Status.QUEUED,
                             next_check_at__isnull=False).update(next_check_at=timezone.now())
        dispatch.dispatch_due()
    parent.refresh_from_db()
    assert parent.status == Order.Status.COMPLETED and parent.refunded == 0
    assert len(sent(sandbox)) == 4
    call_command("check_ledger")


def test_a_remembered_route_is_not_asked_to_drip_feed_again(sandbox, dripfed, alice):
    dispatch.dispatch_one(place(alice, dripfed, runs=2, interval=15).pk)
    poll_all()
    before = len(sent(sandbox))

    # Even an interval the upstream would take: the panel runs drip-feeds on this route now.
    later = place(alice, dripfed, runs=2, interval=10, link="https://x.com/later")
    dispatch.dispatch_one(later.pk)

    adds = sent(sandbox)[before:]
    assert len(adds) == 1 and "runs" not in adds[0]
    assert Order.objects.filter(parent=later).count() == 2


def test_one_run_charged_for_a_whole_drip_feed_shows_in_the_cost_cross_check(
        sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=3, interval=20)  # an interval it accepts

    dispatch.dispatch_one(parent.pk)
    poll_all()

    parent.refresh_from_db()
    assert parent.upstream_id and not Order.objects.filter(parent=parent).exists()
    assert Route.objects.get(service=dripfed).dripfeed_refused_at is None
    upstream = sandbox.order(parent.upstream_id)
    assert parent.upstream_charge == Decimal(upstream["charge"])
    # Paid upstream for one run of three: the difference is the other two runs' cost.
    assert parent.cost_difference == quantize_money(parent.upstream_charge) - parent.cost
    assert parent.cost_difference < 0
    assert parent.upstream_charge * 3 == pytest.approx(parent.cost, abs=Decimal("0.00002"))
    # Far below the cost snapshot: flagged for staff on the first status, and counted.
    assert parent.flagged_at is not None and "against a cost of" in parent.flag_reason
    catalog = parent.provider
    catalog.refresh_from_db()
    assert catalog.cost_mismatches == 1 and str(parent) in catalog.last_cost_mismatch


def test_an_error_about_something_else_still_fails_the_order(sandbox, dripfed, alice):
    parent = place(alice, dripfed, runs=2, interval=15)
    sandbox.set_fault("error", action="add", message="Incorrect link")

    dispatch.dispatch_one(parent.pk)

    parent.refresh_from_db()
    assert parent.status == Order.Status.FAILED and parent.refunded == parent.charge
    assert Route.objects.get(service=dripfed).dripfeed_refused_at is None
    assert not Order.objects.filter(parent=parent).exists()
