"""A subscription without `posts` — which the protocol allows ("created for an unlimited
number of posts") and panels reselling us send — is placed for SUBSCRIPTION_DEFAULT_POSTS
posts: charged up front for max × that many, sent upstream with that `posts`, and the
undelivered share refunded when it ends early. No charge is unbounded, none is refused."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch, polling
from orders.models import Order
from orders.pricing import charge_for
from panel.ledger import mismatched_balances
from panel.models import ApiKey, LedgerEntry
from panel.money import quantize_refund
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription_service(catalog):
    return make_service(catalog, "Subscriptions")


def _add_without_posts(client, user, service, **extra):
    _, key = ApiKey.issue(user)
    reply = client.post("/api/v2", {
        "key": key, "action": "add", "service": service.pk, "username": "someone",
        "min": service.min_quantity, "max": service.min_quantity * 2, "delay": 0, **extra,
    }).json()
    assert set(reply) == {"order"}, reply
    return Order.objects.get(pk=reply["order"])


def test_a_subscription_without_posts_is_charged_for_the_default_posts_and_sent_with_them(
        client, alice, subscription_service, sandbox, settings):
    settings.SUBSCRIPTION_DEFAULT_POSTS = 4
    high = subscription_service.min_quantity * 2

    order = _add_without_posts(client, alice, subscription_service)

    assert order.charged_units == high * 4
    assert order.charge == charge_for(order.rate, high * 4, "Subscriptions") > 0
    assert order.params["posts"] == "4"
    assert dispatch.dispatch_one(order.pk)
    sent = sandbox.adds()[-1]["params"]
    assert sent["posts"] == "4" and sent["max"] == str(high)
    alice.refresh_from_db()
    assert alice.balance == Decimal(100) - order.charge


def test_old_posts_without_posts_add_to_the_default_posts(
        client, alice, subscription_service, settings):
    settings.SUBSCRIPTION_DEFAULT_POSTS = 5

    order = _add_without_posts(client, alice, subscription_service, old_posts=2)

    assert order.charged_units == subscription_service.min_quantity * 2 * (5 + 2)
    assert (order.params["posts"], order.params["old_posts"]) == ("5", "2")


def test_a_subscription_without_posts_that_ends_early_refunds_the_undelivered_posts(
        client, alice, subscription_service, sandbox, settings):
    settings.SUBSCRIPTION_DEFAULT_POSTS = 4
    high = subscription_service.min_quantity * 2
    order = _add_without_posts(client, alice, subscription_service)
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    # It expired after one post of four: three posts' worth was never delivered.
    sandbox.force_order(order.upstream_id, status="Partial", remains=high * 3)
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))

    polling.poll_orders()

    order.refresh_from_db()
    assert order.status == Order.Status.PARTIAL
    refunds = list(LedgerEntry.objects.filter(order_id=order.pk, kind="refund")
                   .values_list("amount", flat=True))
    assert refunds == [quantize_refund(order.charge * 3 / 4)]
    assert mismatched_balances() == []
