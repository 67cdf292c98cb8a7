"""An upstream that splits lists (comments, usernames…) on a literal backslash-n (the sandbox's
`literal_newlines` quirk): five comments sent with real newlines, as the protocol says, are
one comment to it, charged as one. The panel keeps sending real newlines, records what the
upstream reports it charged (and counted, where it says), and flags an order whose upstream
charge is far below its cost snapshot (UPSTREAM_CHARGE_FLAG_PERCENT) on the first status,
so such an upstream is noticed on its first order; the admin's provider page counts them.
End to end: the real client, dispatch, polling and the sandbox over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from orders import dispatch, polling
from orders.models import Order, OrderEvent
from orders.placing import place_order
from panel.money import quantize_money
from providers.models import Provider
from providers.sync import sync_catalog
from tests.conftest import make_service
from tests.test_client_replies import Reply, Upstream

pytestmark = pytest.mark.django_db

COMMENTS = "\n".join(f"great post {i}" for i in range(5))


@pytest.fixture
def comments(catalog, sandbox):
    # That upstream takes a single comment, so five counted as one are accepted.
    first = min(s["service"] for s in sandbox.services() if s["type"] == "Custom Comments")
    sandbox.update_service(first, min=1)
    assert sync_catalog(catalog).ok
    return make_service(catalog, "Custom Comments", one_order_per_link=False, min_quantity=5)


def _sent(user, service, link: str = "https://x.com/p/1") -> Order:
    order = place_order(user, service.pk, {"link": link, "comments": COMMENTS})
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


def test_the_sandbox_splits_lists_on_a_literal_backslash_n(sandbox):
    sandbox.set_quirk("literal_newlines")
    service = next(s for s in sandbox.services() if s["type"] == "Custom Comments")
    sandbox.update_service(service["service"], min=1)

    def add(text: str, link: str) -> dict:
        reply = requests.post(sandbox.url, timeout=5, data={
            "key": sandbox.key, "action": "add", "service": service["service"], "link": link,
            "comments": text}).json()
        return sandbox.order(reply["order"])

    real = add(COMMENTS, "https://x.com/real")
    literal = add(COMMENTS.replace("\n", "\\n"), "https://x.com/literal")

    assert real["quantity"] == 1
    assert Decimal(real["charge"]) == quantize_money(Decimal(service["rate"]) / 1000)
    assert literal["quantity"] == 5


def test_an_upstream_counting_five_comments_as_one_is_flagged_on_the_first_order(
        comments, alice, sandbox, catalog):
    sandbox.set_quirk("literal_newlines")
    order = _sent(alice, comments)
    assert sandbox.adds()[0]["params"]["comments"] == COMMENTS  # real newlines, as is right
    sandbox.force_order(order.upstream_id, status="In progress")

    _poll(order)

    upstream = sandbox.order(order.upstream_id)
    assert order.upstream_charge == Decimal(upstream["charge"])
    assert order.cost + order.cost_difference == quantize_money(order.upstream_charge)
    assert order.status == Order.Status.IN_PROGRESS
    assert order.flagged_at is not None
    assert "against a cost of" in order.flag_reason
    catalog.refresh_from_db()
    assert catalog.cost_mismatches == 1 and str(order) in catalog.last_cost_mismatch
    assert catalog.last_cost_mismatch_at is not None

    # Asked again, the same charge is the same finding: not flagged or counted twice.
    _poll(order)
    catalog.refresh_from_db()
    assert catalog.cost_mismatches == 1
    assert OrderEvent.objects.filter(order=order, kind="cost_mismatch").count() == 1

    # The next order from that upstream is its own finding.
    second = _sent(alice, comments, link="https://x.com/p/2")
    _poll(second)
    catalog.refresh_from_db()
    assert second.flagged_at is not None and catalog.cost_mismatches == 2


def test_an_upstream_that_counts_the_lines_right_is_not_flagged(comments, alice, catalog):
    order = _sent(alice, comments)

    _poll(order)

    assert order.status == Order.Status.COMPLETED and order.cost_difference == 0
    assert order.flagged_at is None
    catalog.refresh_from_db()
    assert catalog.cost_mismatches == 0


def test_what_counts_as_far_below_is_a_setting(comments, alice, sandbox, settings, catalog):
    settings.UPSTREAM_CHARGE_FLAG_PERCENT = 10  # one comment of five is 20%: not far enough
    sandbox.set_quirk("literal_newlines")
    order = _sent(alice, comments)

    _poll(order)

    assert order.cost_difference < 0 and order.flagged_at is None


def test_a_quantity_the_upstream_reports_is_recorded_and_checked(comments, alice, catalog):
    # An upstream that charges as sold but says how many units it took the order for.
    order = _sent(alice, comments)
    upstream = Upstream()
    upstream.queue(Reply(body={str(order.upstream_id): {
        "charge": str(order.cost), "start_count": "0", "status": "In progress",
        "remains": "1", "currency": "USD", "quantity": "1"}}))
    Provider.objects.filter(pk=catalog.pk).update(api_url=upstream.url)
    try:
        _poll(order)
    finally:
        upstream.stop()

    assert order.upstream_quantity == 1 and order.cost_difference == 0
    assert order.flagged_at is not None
    assert "1 of the 5 units sold" in order.flag_reason


def test_the_provider_page_shows_the_cost_mismatches(comments, alice, sandbox, catalog,
                                                    django_user_model, client):
    sandbox.set_quirk("literal_newlines")
    order = _sent(alice, comments)
    _poll(order)
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-1234567")
    client.force_login(boss)

    page = client.get(f"/admin/providers/provider/{catalog.pk}/change/").content.decode()

    assert "Cost mismatches found" in page and '<div class="readonly">1</div>' in page
    assert f"order #{order.pk}: the upstream charged" in page
    listing = client.get("/admin/providers/provider/").content.decode()
    assert "field-cost_mismatches" in listing
