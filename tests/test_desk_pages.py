"""The desk's lists: what they show, their filters and CSV, and a number of queries that
does not grow with the number of rows."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders.dispatch import dispatch_one
from orders.models import Order, OrderEvent, Refill
from orders.placing import place_order
from panel.templatetags.panel_money import money
from providers.models import Provider
from tests.conftest import make_customer, make_service, make_staff, valid_add_params

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(client):
    client.force_login(make_staff("sam"))
    return client


@pytest.fixture
def service(catalog):
    return make_service(catalog, "Default", upstream={"refill": True}, refill=True)


def place(user, service, link: str) -> Order:
    params = valid_add_params({"service": service.pk, "type": service.type,
                               "min": service.min_quantity})
    return place_order(user, service.pk, {**params, "link": link})


def add_parked(service, user, n: int, start: int = 0) -> list[Order]:
    """n orders as dispatch leaves an unknown outcome: parked, flagged, with the event."""
    orders = [place(user, service, f"https://instagram.com/p/parked{start + i}")
              for i in range(n)]
    now = timezone.now()
    message = "Sandbox: outcome unknown (HTTP 502); it may have been bought upstream"
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        status=Order.Status.NEEDS_ATTENTION, error=message, flagged_at=now,
        flag_reason=message, next_check_at=None)
    OrderEvent.objects.bulk_create(OrderEvent(order=o, kind="needs_attention", message=message)
                                   for o in orders)
    return orders


def add_refills(service, user, n: int, start: int = 0) -> list[Refill]:
    refills = []
    for i in range(n):
        order = place(user, service, f"https://instagram.com/p/refill{start + i}")
        Order.objects.filter(pk=order.pk).update(
            status=Order.Status.COMPLETED, upstream_id=900000 + start + i,
            provider=service.routes.get().provider_service.provider,
            route=service.routes.get(), finished_at=timezone.now())
        refills.append(Refill.objects.create(
            order=order, user=user, provider=service.routes.get().provider_service.provider,
            status=Refill.Status.NEEDS_ATTENTION, error="outcome unknown: HTTP 502",
            flagged_at=timezone.now(), flag_reason="refill sent, outcome unknown"))
    return refills


def add_cancels(service, user, n: int, start: int = 0) -> None:
    for i in range(n):
        order = place(user, service, f"https://instagram.com/p/cancel{start + i}")
        Order.objects.filter(pk=order.pk).update(
            status=Order.Status.IN_PROGRESS, upstream_id=800000 + start + i,
            provider=service.routes.get().provider_service.provider,
            cancel_error="cancel may have reached the upstream", flagged_at=timezone.now(),
            flag_reason="cancel unknown")
        OrderEvent.objects.create(order=order, kind="cancel_requested")


def queries(desk, url: str, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = desk.get(url, params)
    assert response.status_code == 200, url
    return len(captured)


# --- constant queries -------------------------------------------------------------------------

def add_parked_and_refills(service, user, n: int, start: int = 0) -> None:
    add_parked(service, user, n, start)
    add_refills(service, user, n, start)


@pytest.mark.parametrize("page, make", [
    ("desk:attention", add_parked_and_refills), ("desk:orders", add_parked),
    ("desk:refills", add_refills), ("desk:cancels", add_cancels),
])
def test_lists_run_the_same_queries_for_3_rows_as_for_15(desk, service, alice, page, make):
    make(service, alice, 3)
    few = queries(desk, reverse(page))
    make(service, make_customer("dora"), 12, start=100)
    assert queries(desk, reverse(page)) == few


def test_the_order_page_runs_the_same_queries_whatever_its_history(desk, service, alice):
    [order] = add_parked(service, alice, 1)
    few = queries(desk, reverse("desk:order", args=[order.pk]))
    OrderEvent.objects.bulk_create(OrderEvent(order=order, kind="status", message=f"check {i}")
                                   for i in range(30))
    assert queries(desk, reverse("desk:order", args=[order.pk])) == few


def test_the_bulk_confirmation_runs_the_same_queries_for_more_orders(desk, service, alice):
    few = add_parked(service, alice, 2)
    ids = ",".join(str(o.pk) for o in few)
    small = queries(desk, reverse("desk:bulk"), action="fail_and_refund", ids=ids)
    more = few + add_parked(service, alice, 10, start=50)
    ids = ",".join(str(o.pk) for o in more)
    assert queries(desk, reverse("desk:bulk"), action="fail_and_refund", ids=ids) == small


# --- what the pages show ----------------------------------------------------------------------

def test_the_queue_shows_reason_age_and_the_last_upstream_reply(desk, service, alice):
    [parked] = add_parked(service, alice, 1)
    OrderEvent.objects.create(order=parked, kind="route_failed",
                              message="Sandbox: Not enough funds")
    page = desk.get(reverse("desk:attention")).content.decode()
    assert f"#{parked.pk}" in page
    assert "outcome unknown (HTTP 502)" in page  # the reason
    assert "Sandbox: Not enough funds" in page  # the last thing the upstream said
    assert "A resend can buy twice." in page
    assert "Sandbox · " in page  # grouped under its provider
    assert 'data-attention-count>1' in page  # the navigation's badge


def test_the_queue_groups_by_provider_and_hour(desk, service, alice):
    orders = add_parked(service, alice, 3)
    Order.objects.filter(pk=orders[0].pk).update(flagged_at=timezone.now() - timedelta(hours=3))
    page = desk.get(reverse("desk:attention"))
    groups = page.context["groups"]
    assert [len(g.orders) for g in groups] == [2, 1]
    assert {g.provider for g in groups} == {"Sandbox"}
    assert groups[0].ids == ",".join(str(o.pk) for o in orders[1:])


def test_the_order_page_shows_charge_cost_margin_and_history(desk, service, alice):
    order = place(alice, service, "https://instagram.com/p/margin")
    dispatch_one(order.pk)
    order.refresh_from_db()
    page = desk.get(reverse("desk:order", args=[order.pk]))
    text = page.content.decode()
    assert page.context["margin"] == order.charge - order.cost
    assert money(order.cost) in text and money(order.charge) in text
    assert money(order.charge - order.cost) in text  # the margin
    assert f"Sandbox order {order.upstream_id}" in text  # the "sent" event
    assert "pw-" not in text


def filtered(desk, **params) -> set[int]:
    page = desk.get(reverse("desk:orders"), params)
    assert page.status_code == 200
    return {row["order"].pk for row in page.context["rows"]}


def test_orders_filters_and_search(desk, catalog, service, alice, bob):
    other = make_service(catalog, "Package")
    a = place(alice, service, "https://instagram.com/p/alpha")
    b = place(bob, other, "https://instagram.com/p/beta")
    dispatch_one(b.pk)
    b.refresh_from_db()
    [c] = add_parked(service, bob, 1)
    Order.objects.filter(pk=a.pk).update(created_at=timezone.now() - timedelta(days=10))

    assert filtered(desk) == {a.pk, b.pk, c.pk}
    assert filtered(desk, status="needs_attention") == {c.pk}
    assert filtered(desk, status="queued") == {a.pk}
    assert filtered(desk, service=other.pk) == {b.pk}
    assert filtered(desk, provider=catalog.pk) == {b.pk}
    assert filtered(desk, customer="BOB") == {b.pk, c.pk}
    assert filtered(desk, flagged="on") == {c.pk}
    day = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert filtered(desk, date_from=day) == {b.pk, c.pk}
    assert filtered(desk, date_to=day) == {a.pk}
    assert filtered(desk, q=str(a.pk)) == {a.pk}
    assert filtered(desk, q=str(b.upstream_id)) == {b.pk}
    assert filtered(desk, q="alph") == {a.pk}
    assert filtered(desk, q="alice") == {a.pk}


def test_orders_are_paged(desk, service, alice):
    add_parked(service, alice, 55)
    first = desk.get(reverse("desk:orders"))
    assert len(first.context["rows"]) == 50 and first.context["page"].paginator.num_pages == 2
    second = desk.get(reverse("desk:orders"), {"page": 2, "status": "needs_attention"})
    assert len(second.context["rows"]) == 5


def test_the_csv_is_the_filtered_list_with_formulas_defused(desk, service, alice, bob):
    place(alice, service, "https://instagram.com/p/alices")
    place(bob, service, "https://instagram.com/p/bobs")
    # Service names come from the upstream's catalog: text we do not control.
    service.name = '=HYPERLINK("http://evil")'
    service.save()
    response = desk.get(reverse("desk:orders_csv"), {"customer": "alice"})
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "created_at", "customer"]
    assert [r[2] for r in rows[1:]] == ["alice"]
    assert rows[1][3].startswith("'=HYPERLINK")


def test_refills_by_state_and_per_service_counts(desk, service, alice):
    refills = add_refills(service, alice, 2)
    Refill.objects.filter(pk=refills[0].pk).update(status=Refill.Status.COMPLETED, flagged_at=None)
    page = desk.get(reverse("desk:refills"), {"state": "done"})
    assert [r.pk for r in page.context["page"].object_list] == [refills[0].pk]
    tabs = {t["slug"]: t["count"] for t in page.context["tabs"]}
    assert tabs["done"] == 1 and tabs["errored"] == 1
    [stat] = page.context["stats"]
    assert (stat["asked"], stat["succeeded"]) == (2, 1)


def test_cancels_by_state(desk, service, alice):
    add_cancels(service, alice, 2)
    page = desk.get(reverse("desk:cancels"))
    assert len(page.context["page"].object_list) == 2  # errored, the default tab
    [stat] = page.context["stats"]
    assert stat["asked"] == 2 and stat["succeeded"] == 0


def test_alerts_list_low_balances_and_a_long_queue(desk, settings, service, alice):
    settings.DESK_ATTENTION_ALERT = 2
    Provider.objects.update(balance=Decimal("3.50"), low_balance_threshold=Decimal("10"),
                            balance_currency="USD", balance_checked_at=timezone.now())
    add_parked(service, alice, 2)
    page = desk.get(reverse("desk:alerts")).content.decode()
    assert "Low balance at Sandbox" in page and "3.50" in page
    assert "2 waiting for staff" in page


def test_no_alerts_when_all_is_well(desk, provider):
    page = desk.get(reverse("desk:alerts"))
    assert page.context["alerts"] == []


def test_a_member_without_the_orders_area_cannot_act(client, service, alice):
    from django.contrib.auth.models import Group, Permission

    [order] = add_parked(service, alice, 1)
    support = make_customer("support", is_staff=True)
    staff, _ = Group.objects.get_or_create(name="Staff")
    support.groups.add(staff)
    support.user_permissions.add(Permission.objects.get(codename="tickets",
                                                        content_type__app_label="desk"))
    client.force_login(support)
    response = client.post(reverse("desk:order_action", args=[order.pk]),
                           {"action": "fail_and_refund", "reason": "x"})
    assert response.status_code == 403
    assert client.post(reverse("desk:bulk"), {"action": "fail_and_refund", "ids": order.pk,
                                              "confirm": "1", "reason": "x"}).status_code == 403
    order.refresh_from_db()
    assert order.status == "needs_attention"
