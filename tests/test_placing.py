"""place_order: validation by type, pricing, and the one transaction that charges."""

from decimal import Decimal

import pytest

from orders.errors import ACTIVE_LINK, Refusal
from orders.models import Order
from orders.placing import place_mass_order, place_order
from orders.pricing import customer_rate
from panel.models import LedgerEntry
from tests.conftest import make_customer, make_service, valid_add_params

pytestmark = pytest.mark.django_db
ALL_TYPES = [
    "Default", "Package", "Custom Comments", "Custom Comments Package",
    "Mentions with Hashtags", "Mentions Custom List", "Mentions Hashtag",
    "Mentions User Followers", "Mentions Media Likers", "Subscriptions", "Comment Likes",
    "Comment Replies", "Poll", "Invites from Groups",
]
FLAT = {"Package", "Custom Comments Package"}


def _api_shape(service) -> dict:
    return {"service": service.pk, "type": service.type, "min": service.min_quantity}


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_every_type_is_placed_charged_and_snapshotted(catalog, alice, kind):
    service = make_service(catalog, kind)
    rate = customer_rate(service, alice)

    order = place_order(alice, service.pk, valid_add_params(_api_shape(service)))

    assert order.status == Order.Status.QUEUED
    expected = rate if kind in FLAT else (rate * order.charged_units / 1000).quantize(
        Decimal("0.00001"))
    assert order.rate == rate and order.charge == max(expected, Decimal("0.00001"))
    assert order.cost <= order.charge
    alice.refresh_from_db()
    assert alice.balance == Decimal("100") - order.charge
    assert list(LedgerEntry.objects.filter(order_id=order.pk).values_list("kind", "amount")) == [
        ("charge", -order.charge)]


def test_units_come_from_lines_where_the_type_says_so(catalog, alice):
    service = make_service(catalog, "Custom Comments")
    comments = "\r\n".join(f"nice {i}" for i in range(service.min_quantity + 3)) + "\n\n"

    order = place_order(alice, service.pk, {"link": "https://x.com/p/1", "comments": comments})

    assert order.charged_units == service.min_quantity + 3


def test_drip_feed_charges_quantity_times_runs(catalog, alice):
    service = make_service(catalog, "Default", dripfeed=True)
    quantity = service.min_quantity

    order = place_order(alice, service.pk, {"link": "https://x.com/p/1", "quantity": quantity,
                                            "runs": 3, "interval": 10})

    assert (order.quantity, order.runs, order.interval) == (quantity, 3, 10)
    assert order.charged_units == quantity * 3


@pytest.mark.parametrize(("service_id", "params", "message"), [
    ("999999", {"link": "https://x.com/a", "quantity": 100}, "Incorrect service ID"),
    ("abc", {"link": "https://x.com/a", "quantity": 100}, "Incorrect service ID"),
    ("-1", {"link": "https://x.com/a", "quantity": 100}, "Incorrect service ID"),
    ("99999999999999999999999", {"link": "https://x.com/a"}, "Incorrect service ID"),
    (None, {"link": "not a url", "quantity": 100}, "Incorrect link"),
    (None, {"link": "https://x.com/a", "quantity": 1}, "Quantity less than minimal {min}"),
    (None, {"link": "https://x.com/a", "quantity": 10**9}, "Quantity more than maximum {max}"),
    (None, {"link": "https://x.com/a"}, "Incorrect request"),
])
def test_bad_input_gets_the_api_error_text_and_writes_nothing(
        catalog, alice, service_id, params, message):
    service = make_service(catalog, "Default")
    expected = message.format(min=service.min_quantity, max=service.max_quantity)

    with pytest.raises(Refusal) as excinfo:
        place_order(alice, service_id or service.pk, params)

    assert excinfo.value.message == expected
    assert not Order.objects.exists()
    assert LedgerEntry.objects.filter(kind="charge").count() == 0


def test_a_disabled_service_or_one_without_a_usable_route_cannot_be_bought(catalog, alice):
    disabled = make_service(catalog, "Default", enabled=False)
    orphan = make_service(catalog, "Poll")
    orphan.routes.update(provider_service=orphan.routes.get().provider_service)
    catalog.enabled = False
    catalog.save()

    for service in (disabled, orphan):
        with pytest.raises(Refusal, match="Incorrect service ID"):
            place_order(alice, service.pk, valid_add_params(_api_shape(service)))


def test_not_enough_funds_writes_nothing(catalog):
    poor = make_customer("poor", "0.00001")
    service = make_service(catalog, "Default")

    with pytest.raises(Refusal, match="Not enough funds on balance"):
        place_order(poor, service.pk, {"link": "https://x.com/a",
                                       "quantity": service.max_quantity})

    assert not Order.objects.exists()
    poor.refresh_from_db()
    assert poor.balance == Decimal("0.00001")


def test_one_active_order_per_link_where_the_service_has_the_rule(catalog, alice, bob):
    strict = make_service(catalog, "Default", one_order_per_link=True)
    relaxed = make_service(catalog, "Poll", one_order_per_link=False)
    params = {"link": "https://x.com/same", "quantity": strict.min_quantity}
    first = place_order(alice, strict.pk, params)

    with pytest.raises(Refusal) as excinfo:
        place_order(bob, strict.pk, params)
    assert excinfo.value.message == ACTIVE_LINK

    poll = {"link": "https://x.com/same", "quantity": relaxed.min_quantity, "answer_number": 1}
    place_order(alice, relaxed.pk, poll)
    place_order(alice, relaxed.pk, poll)

    Order.objects.filter(pk=first.pk).update(status=Order.Status.COMPLETED)
    assert place_order(bob, strict.pk, params).pk


def test_dispatch_is_kicked_only_once_the_order_committed(
        catalog, alice, django_capture_on_commit_callbacks):
    service = make_service(catalog, "Default")

    with django_capture_on_commit_callbacks() as callbacks:
        place_order(alice, service.pk, {"link": "https://x.com/a",
                                        "quantity": service.min_quantity})

    assert len(callbacks) == 1


def test_a_new_custom_rate_applies_once_the_cached_one_expires(catalog, alice, settings):
    import time

    from orders.models import CustomRate

    settings.CATALOG_CACHE_SECONDS = 0.5
    service = make_service(catalog, "Default", one_order_per_link=False)
    params = {"link": "https://x.com/r", "quantity": service.min_quantity}
    listed = place_order(alice, service.pk, params).rate
    CustomRate.objects.create(user=alice, service=service, rate=listed * 2)

    assert place_order(alice, service.pk, params).rate == listed  # at most that old
    time.sleep(0.6)
    assert place_order(alice, service.pk, params).rate == listed * 2


def test_mass_order_lines_succeed_or_fail_on_their_own(catalog, alice):
    service = make_service(catalog, "Default", one_order_per_link=False)
    text = (f"{service.pk} | https://x.com/1 | {service.min_quantity}\r\n"
            f"{service.pk} | https://x.com/2 | 1\n"
            "\n"
            f"999999 | https://x.com/3 | {service.min_quantity}\n"
            "garbage line\n"
            f"{service.pk} | https://x.com/4 | {service.min_quantity}\n")

    results = place_mass_order(alice, text)

    assert [r.order is not None for r in results] == [True, False, False, False, True]
    assert results[1].error == f"Quantity less than minimal {service.min_quantity}"
    assert results[2].error == "Incorrect service ID"
    assert results[3].error.startswith("Incorrect request")
    assert Order.objects.filter(user=alice).count() == 2


def test_the_catalog_cache_saves_the_service_query_and_expires(catalog, alice, settings):
    import time

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.CATALOG_CACHE_SECONDS = 0.5
    service = make_service(catalog, "Default", one_order_per_link=False)
    params = {"link": "https://x.com/c", "quantity": service.min_quantity}
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as ctx:
            place_order(alice, service.pk, params)
        counts.append(len(ctx.captured_queries))
    # The second order reuses the service, its routes and the customer's (absent) custom rate.
    assert counts[1] == counts[0] - 2

    service.enabled = False
    service.save()
    time.sleep(0.6)
    with pytest.raises(Refusal, match="Incorrect service ID"):
        place_order(alice, service.pk, params)
