"""The customer's pages that list and follow things, through the test client: services,
orders and one order (refill and cancel), refills, drip-feed, subscriptions, transactions and
service updates. The rules every page keeps are proven here too: owner-only (404), nothing
about providers or costs, CSRF on every POST form, no inline script or style, and a constant
number of queries whatever a list's length."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import api, dispatch, polling, pricing, refills
from orders.models import CustomRate, Order, Refill, Service, ServiceUpdate
from orders.placing import place_order
from orders.templatetags.orders_customer import rate as shown_rate
from panel import ledger
from panel.models import LedgerEntry
from panel.money import quantize_rate
from providers.models import ProviderService
from providers.sync import sync_catalog
from tests.conftest import make_provider, make_service, valid_add_params

pytestmark = pytest.mark.django_db

PROVIDER_NAME = "Hiddenprov Wholesale"


@pytest.fixture
def upstream(db, sandbox):
    """An upstream with a name that must never reach a customer page."""
    provider = make_provider(sandbox, name=PROVIDER_NAME)
    assert sync_catalog(provider).ok
    return provider


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _body(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def _html(client, name, *args, **params) -> str:
    response = client.get(reverse(name, args=args), params)
    assert response.status_code == 200, response.status_code
    return _body(response)


def _place(service, user, n: int = 0, **params) -> Order:
    fields = {"link": f"https://instagram.com/p/{service.pk}-{n}",
              "quantity": service.min_quantity, **params}
    return place_order(user, service.pk, fields)


def _sent(order: Order) -> Order:
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.upstream_id
    return order


def _upstream_says(sandbox, order: Order, status: str, **state) -> Order:
    """The upstream reports `status` for the order, and polling records it."""
    sandbox.force_order(order.upstream_id, status=status, **state)
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
    polling.poll_orders()
    order.refresh_from_db()
    return order


def orders_in_every_state(upstream, sandbox, user) -> dict[str, Order]:
    """One order per customer status, each through the real workflow."""
    sandbox.set_speed(600)  # orders stay where the upstream is told to put them
    service = make_service(upstream, "Default", upstream={"refill": True, "cancel": True},
                           refill=True, cancel=True)
    orders = {"Pending": _place(service, user, 0)}
    for n, status in enumerate(["In progress", "Processing", "Completed", "Partial",
                                "Canceled"], start=1):
        order = _sent(_place(service, user, n))
        remains = {"remains": 3} if status == "Partial" else {}
        orders[status] = _upstream_says(sandbox, order, status, **remains)
    return orders


def failed_order(upstream, sandbox, user) -> Order:
    """An order the upstream refused: FAILED, refunded, its error naming the provider."""
    service = make_service(upstream, "Default")
    sandbox.set_fault("error", action="add", message=f"{PROVIDER_NAME} is out of stock")
    order = _place(service, user, 99)
    dispatch.dispatch_one(order.pk)
    sandbox.clear_faults()
    order.refresh_from_db()
    assert order.status == Order.Status.FAILED and PROVIDER_NAME in order.error
    return order


def _queries(client, name, *args, **params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        _html(client, name, *args, **params)
    return len(ctx)


# --- login and ownership --------------------------------------------------------------------

LIST_PAGES = ["services", "orders", "refills", "dripfeed", "subscriptions", "transactions",
              "transactions_csv", "updates"]


@pytest.mark.parametrize("name", LIST_PAGES)
def test_every_list_page_needs_a_login(client, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_another_customers_order_run_and_refill_are_404_on_every_url(
        upstream, sandbox, alice, bob, client):
    orders = orders_in_every_state(upstream, sandbox, alice)
    completed = orders["Completed"]
    refill = refills.request_refill(alice, completed.pk)
    drip = panel_dripfeed(upstream, alice)
    run = drip.runs_set.get(run_number=1)
    client.force_login(bob)

    for order in [*orders.values(), drip, run]:
        assert client.get(reverse("order_detail", args=[order.pk])).status_code == 404
        for action in ("order_refill", "order_cancel"):
            assert client.post(reverse(action, args=[order.pk])).status_code == 404
    assert client.get(reverse("order_detail", args=[999_999])).status_code == 404
    for name in LIST_PAGES:
        html = _body(client.get(reverse(name)))
        for order in [*orders.values(), drip, run]:
            assert reverse("order_detail", args=[order.pk]) not in html
        assert completed.link not in html
    assert Refill.objects.get(pk=refill.pk).status == Refill.Status.QUEUED
    assert Order.objects.get(pk=orders["In progress"].pk).cancel_requested_at is None


def test_the_order_page_of_a_run_of_ones_own_drip_feed_works(upstream, alice, alice_client):
    drip = panel_dripfeed(upstream, alice)
    run = drip.runs_set.get(run_number=1)

    html = _html(alice_client, "order_detail", run.pk)

    assert "Run 1 of 3 of a drip-feed order." in html
    assert reverse("order_detail", args=[drip.pk]) in html
    assert "included in the drip-feed order" in html
    assert reverse("order_refill", args=[run.pk]) not in html
    assert reverse("order_cancel", args=[run.pk]) not in html


# --- services ---------------------------------------------------------------------------------

def test_services_are_listed_at_this_customers_prices(upstream, alice, alice_client):
    plain = make_service(upstream, "Default", name="Plain followers")
    special = make_service(upstream, "Default", name="Special likes")
    hidden = make_service(upstream, "Default", name="Withdrawn views", enabled=False)
    alice.discount_percent = Decimal(10)
    alice.save()
    CustomRate.objects.create(user=alice, service=special, rate=Decimal("99.5"))

    html = _html(alice_client, "services")

    mine = pricing.customer_rate(plain, alice)
    assert mine is not None and mine < pricing.base_rate(plain)
    assert f">{shown_rate(mine)} USD<" in html
    assert ">99.50 USD<" in html
    assert "Withdrawn views" not in html and hidden.name not in html
    assert f'href="/?service={plain.pk}"' in html
    assert plain.category.name in html


def test_services_search_by_name_or_id_and_filter_by_category(upstream, alice_client):
    followers = make_service(upstream, "Default", name="Zebra followers")
    likes = make_service(upstream, "Default", upstream={"category": "Instagram Likes"},
                         name="Yak likes")

    by_name = _html(alice_client, "services", q="zebra")
    by_id = _html(alice_client, "services", q=str(likes.pk))
    by_category = _html(alice_client, "services", category=likes.category_id)

    assert "Zebra followers" in by_name and "Yak likes" not in by_name
    assert "Yak likes" in by_id and "Zebra followers" not in by_id
    assert "Yak likes" in by_category and followers.name not in by_category


def test_an_htmx_search_answers_with_the_list_alone(upstream, alice_client):
    make_service(upstream, "Default", name="Zebra followers")

    response = alice_client.get(reverse("services"), {"q": "zebra"}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="services-list"')
    assert "Zebra followers" in html and "<html" not in html


def test_average_time_needs_ten_completed_orders_and_is_per_1000(upstream, alice):
    from orders.views.history import AVERAGE_OF, average_times

    service = make_service(upstream, "Default")
    quantity = max(service.min_quantity, 500)
    now = timezone.now()
    for n in range(AVERAGE_OF + 2):
        order = _place(service, alice, n, quantity=quantity)
        # The oldest two took far longer: only the 10 latest may count.
        minutes = 600 if n < 2 else 30
        Order.objects.filter(pk=order.pk).update(
            status=Order.Status.COMPLETED, submitted_at=now - timedelta(minutes=minutes),
            finished_at=now + timedelta(seconds=n))
        if n == AVERAGE_OF - 2:
            assert average_times([service.pk]) == {}  # 9 completed: not enough data

    average = average_times([service.pk])[service.pk]
    latest = [timedelta(minutes=30, seconds=n) for n in range(2, AVERAGE_OF + 2)]
    expected = sum(latest, timedelta()) / AVERAGE_OF * 1000 / quantity
    assert abs(average - expected) < timedelta(milliseconds=10)


def test_services_page_says_not_enough_data_without_ten_orders(upstream, alice_client):
    make_service(upstream, "Default")

    assert "Not enough data" in _html(alice_client, "services")


def test_the_services_page_takes_the_same_queries_for_3_or_30_services(
        upstream, alice_client):
    for _n in range(3):
        make_service(upstream, "Default")
    _html(alice_client, "services")
    few = _queries(alice_client, "services")
    for _n in range(27):
        make_service(upstream, "Default")

    assert _queries(alice_client, "services") == few


# --- orders -----------------------------------------------------------------------------------

def test_orders_tabs_count_each_status_customers_see(upstream, sandbox, alice, alice_client):
    orders = orders_in_every_state(upstream, sandbox, alice)
    failed = failed_order(upstream, sandbox, alice)

    html = _html(alice_client, "orders")

    counts = dict(re.findall(r'>([A-Z][a-z]+(?: [a-z]+)?) <span class="count">(\d+)</span>',
                             html))
    assert counts == {"All": "7", "Pending": "1", "In progress": "1", "Processing": "1",
                      "Completed": "1", "Partial": "1", "Canceled": "2"}
    canceled = _html(alice_client, "orders", status="canceled")
    assert reverse("order_detail", args=[failed.pk]) in canceled  # a failure shows Canceled
    assert reverse("order_detail", args=[orders["Canceled"].pk]) in canceled
    assert reverse("order_detail", args=[orders["Completed"].pk]) not in canceled
    assert 'class="badge status-partial">Partial<' in html


def test_orders_show_the_charge_net_of_refunds_as_the_api_does(
        upstream, sandbox, alice, alice_client):
    partial = orders_in_every_state(upstream, sandbox, alice)["Partial"]
    assert partial.refunded > 0

    html = _html(alice_client, "orders", q=str(partial.pk))

    shown = api.status(alice, {"order": str(partial.pk)})
    assert f'<td data-label="Charge" class="money">{shown["charge"]}</td>' in html
    assert f'<td data-label="Remains">{shown["remains"]}</td>' in html
    page = _html(alice_client, "order_detail", partial.pk)
    assert "Order partly delivered: 3 not delivered." in page
    assert f"{partial.refunded} was refunded to your balance." in page


def test_orders_search_by_id_or_link_and_page_through(upstream, alice, alice_client):
    service = make_service(upstream, "Default")
    placed = [_place(service, alice, n) for n in range(30)]
    other = make_service(upstream, "Default")
    odd = place_order(alice, other.pk, {"link": "https://tiktok.com/@someone-odd",
                                        "quantity": other.min_quantity})

    first = _html(alice_client, "orders")
    second = _html(alice_client, "orders", page=2)
    by_link = _html(alice_client, "orders", q="someone-odd")
    by_id = _html(alice_client, "orders", q=str(placed[3].pk))

    assert "1 to 25 of 31" in first and "26 to 31 of 31" in second
    assert reverse("order_detail", args=[placed[0].pk]) in second
    assert reverse("order_detail", args=[odd.pk]) in by_link and "1 to 1 of 1" in by_link
    assert reverse("order_detail", args=[placed[3].pk]) in by_id and "of 31" not in by_id
    assert reverse("order_detail", args=[placed[4].pk]) not in by_id


def test_the_orders_page_takes_the_same_queries_for_3_or_30_orders(
        upstream, alice, alice_client):
    service = make_service(upstream, "Default")
    for n in range(3):
        _place(service, alice, n)
    _html(alice_client, "orders")
    few = _queries(alice_client, "orders")
    few_found = _queries(alice_client, "orders", status="pending", q="instagram")
    for n in range(3, 30):
        _place(service, alice, n)

    assert _queries(alice_client, "orders") == few
    # A search counts what it found; the tabs' counts serve the pager otherwise.
    assert _queries(alice_client, "orders", status="pending", q="instagram") == few_found \
        == few + 1


# --- one order: history, refill, cancel -------------------------------------------------------

def test_the_order_history_shows_only_customer_safe_events(
        upstream, sandbox, alice, alice_client):
    failed = failed_order(upstream, sandbox, alice)
    assert failed.events.filter(kind="route_failed").exists()

    html = _html(alice_client, "order_detail", failed.pk)

    assert "Order placed." in html
    assert f"{failed.charge} was refunded to your balance." in html
    assert "Order canceled." in html
    assert PROVIDER_NAME not in html and "out of stock" not in html


def test_a_status_change_shows_only_its_status_word(upstream, alice, alice_client):
    order = _place(make_service(upstream, "Default"), alice)
    order.log("status", "the upstream reports it In progress")
    order.log("status", f"{PROVIDER_NAME} says: weird state")

    html = _html(alice_client, "order_detail", order.pk)

    assert "Status: In progress." in html
    assert "weird state" not in html and PROVIDER_NAME not in html


def test_the_refill_button_shows_exactly_when_the_api_would_take_it(
        upstream, sandbox, alice, alice_client):
    orders = orders_in_every_state(upstream, sandbox, alice)
    completed = orders["Completed"]
    refill_url = reverse("order_refill", args=[completed.pk])

    assert refill_url in _html(alice_client, "order_detail", completed.pk)
    for status, order in orders.items():
        if status != "Completed":
            html = _html(alice_client, "order_detail", order.pk)
            assert reverse("order_refill", args=[order.pk]) not in html
            assert "Refill is available once the order is completed." in html
            assert api.refill(alice, {"orders": str(order.pk)})[0]["refill"] == {
                "error": "Order not eligible for refill"}

    response = alice_client.post(refill_url, follow=True)

    refill = Refill.objects.get(order=completed)
    html = response.content.decode()
    assert f"Refill #{refill.pk} requested." in html
    assert refill_url not in html and "A refill of this order is already under way." in html
    assert reverse("order_detail", args=[completed.pk]) in _html(alice_client, "refills")


def test_a_refill_after_the_window_is_refused_with_the_reason(
        upstream, sandbox, alice, alice_client):
    completed = orders_in_every_state(upstream, sandbox, alice)["Completed"]
    Order.objects.filter(pk=completed.pk).update(finished_at=timezone.now() - timedelta(days=31))

    html = _html(alice_client, "order_detail", completed.pk)
    response = alice_client.post(reverse("order_refill", args=[completed.pk]), follow=True)

    assert "Refill is available for 30 days after completion." in html
    assert reverse("order_refill", args=[completed.pk]) not in html
    assert "Refill is available for 30 days after completion." in response.content.decode()
    assert not Refill.objects.filter(order=completed).exists()


def test_cancel_before_sending_refunds_at_once_from_the_page(upstream, alice, alice_client):
    service = make_service(upstream, "Default", upstream={"cancel": True}, cancel=True)
    order = _place(service, alice)
    cancel_url = reverse("order_cancel", args=[order.pk])
    assert cancel_url in _html(alice_client, "order_detail", order.pk)

    response = alice_client.post(cancel_url, follow=True)

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELED and order.refunded == order.charge
    html = response.content.decode()
    assert "Order canceled and refunded." in html and cancel_url not in html
    assert "This order is finished." in html


def test_a_cancel_of_a_running_order_goes_upstream_once(upstream, sandbox, alice, alice_client):
    running = orders_in_every_state(upstream, sandbox, alice)["In progress"]

    alice_client.post(reverse("order_cancel", args=[running.pk]))
    again = alice_client.post(reverse("order_cancel", args=[running.pk]), follow=True)

    running.refresh_from_db()
    assert running.cancel_requested_at is not None
    assert running.events.filter(kind="cancel_requested").count() == 1
    html = again.content.decode()
    assert "A cancel of this order was already requested." in html
    assert "You asked to cancel this order." in html


def test_a_service_without_cancel_says_so_and_refuses_the_post(upstream, alice, alice_client):
    service = make_service(upstream, "Default", cancel=False)
    order = _place(service, alice)

    html = _html(alice_client, "order_detail", order.pk)
    response = alice_client.post(reverse("order_cancel", args=[order.pk]), follow=True)

    assert "This service cannot be canceled." in html
    assert reverse("order_cancel", args=[order.pk]) not in html
    assert "This service cannot be canceled." in response.content.decode()
    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED and order.cancel_requested_at is None


def test_order_again_carries_the_orders_fields(upstream, alice, alice_client):
    service = make_service(upstream, "Default")
    order = _place(service, alice, 7)

    html = _html(alice_client, "order_detail", order.pk)

    link = "https%3A%2F%2Finstagram.com%2Fp%2F" + f"{service.pk}-7"
    assert f"/?service={service.pk}&amp;link={link}&amp;quantity={order.quantity}" in html


def test_the_order_page_takes_a_few_queries(upstream, sandbox, alice, alice_client,
                                            django_assert_max_num_queries):
    completed = orders_in_every_state(upstream, sandbox, alice)["Completed"]
    refills.request_refill(alice, completed.pk)
    _html(alice_client, "order_detail", completed.pk)

    with django_assert_max_num_queries(6):  # session, user, order, events, refills, runs
        _html(alice_client, "order_detail", completed.pk)


# --- refills, drip-feed, subscriptions --------------------------------------------------------

def _refillable_completed(upstream, sandbox, user, n: int) -> Order:
    service = make_service(upstream, "Default", upstream={"refill": True}, refill=True)
    return _upstream_says(sandbox, _sent(_place(service, user, n)), "Completed")


def test_refills_list_states_and_take_the_same_queries_for_1_or_10(
        upstream, sandbox, alice, alice_client):
    first = refills.request_refill(alice, _refillable_completed(upstream, sandbox, alice, 0).pk)
    Refill.objects.filter(pk=first.pk).update(status=Refill.Status.REJECTED)
    _html(alice_client, "refills")
    few = _queries(alice_client, "refills")
    for n in range(1, 10):
        refills.request_refill(alice, _refillable_completed(upstream, sandbox, alice, n).pk)

    html = _html(alice_client, "refills")
    assert _queries(alice_client, "refills") == few
    assert 'class="badge status-rejected">Rejected<' in html
    assert html.count('class="badge status-pending">Pending<') == 9


def panel_dripfeed(upstream, user, n: int = 0) -> Order:
    """A drip-feed the panel runs itself: its upstream does not drip-feed."""
    service = make_service(upstream, "Default", upstream={"dripfeed": False}, dripfeed=True)
    order = _place(service, user, n, runs=3, interval=15)
    dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.runs_set.count() == 3
    return order


def test_drip_feed_lists_runs_done_and_links_each_run(upstream, alice, alice_client):
    order = panel_dripfeed(upstream, alice)
    run = order.runs_set.get(run_number=1)
    Order.objects.filter(pk=run.pk).update(status=Order.Status.COMPLETED,
                                           finished_at=timezone.now())

    html = _html(alice_client, "dripfeed")

    assert "1 of 3" in html
    assert reverse("order_detail", args=[run.pk]) in html
    assert f"{order.charged_units} <span" in html and "3 × " in html
    assert "15 minutes" in html


def test_drip_feed_takes_the_same_queries_for_1_or_10(upstream, alice, alice_client):
    panel_dripfeed(upstream, alice, 0)
    _html(alice_client, "dripfeed")
    few = _queries(alice_client, "dripfeed")
    for n in range(1, 10):
        panel_dripfeed(upstream, alice, n)

    assert _queries(alice_client, "dripfeed") == few


def subscription_order(upstream, user, n: int = 0, **extra) -> Order:
    service = make_service(upstream, "Subscriptions")
    params = {**valid_add_params({"type": "Subscriptions", "min": service.min_quantity,
                                  "service": service.pk}),
              "username": f"someone{n}", **extra}
    return place_order(user, service.pk, params)


def test_subscriptions_show_username_posts_and_expiry(upstream, alice, alice_client):
    order = subscription_order(upstream, alice, expiry=(timezone.localdate() + timedelta(days=9))
                          .strftime("%d/%m/%Y"))
    per_post = int(order.params["max"])
    Order.objects.filter(pk=order.pk).update(status=Order.Status.IN_PROGRESS,
                                             remains=order.charged_units - 2 * per_post)

    waiting = subscription_order(upstream, alice, 1)  # not sent yet: nothing done
    assert waiting.status == Order.Status.QUEUED

    html = _html(alice_client, "subscriptions")

    assert "someone0" in html and "2 of 3" in html and order.params["expiry"] in html
    assert "someone1" in html and "0 of 3" in html


def test_subscriptions_take_the_same_queries_for_1_or_10(upstream, alice, alice_client):
    subscription_order(upstream, alice, 0)
    _html(alice_client, "subscriptions")
    few = _queries(alice_client, "subscriptions")
    for n in range(1, 10):
        subscription_order(upstream, alice, n)

    assert _queries(alice_client, "subscriptions") == few


# --- transactions -----------------------------------------------------------------------------

def test_transactions_describe_entries_without_staff_memos(upstream, sandbox, alice,
                                                           alice_client, staff_member):
    failed = failed_order(upstream, sandbox, alice)
    ledger.adjust(alice.pk, Decimal("2.5"), actor_id=staff_member.pk,
                  reason="Goodwill for the slow start")

    html = _html(alice_client, "transactions")

    assert f"Order #{failed.pk}" in html
    assert f"Refund for order #{failed.pk}: the order could not be delivered" in html
    assert "Goodwill for the slow start" in html and "test deposit" in html
    assert PROVIDER_NAME not in html and "out of stock" not in html
    entry = LedgerEntry.objects.filter(user=alice).first()
    assert f'<td data-label="Balance after" class="money">{entry.balance_after}</td>' in html


def test_transactions_filter_by_kind_and_export_the_filtered_list_exactly(
        upstream, sandbox, alice, alice_client):
    failed = failed_order(upstream, sandbox, alice)

    refunds = _html(alice_client, "transactions", kind="refund")
    response = alice_client.get(reverse("transactions_csv"), {"kind": "charge"})

    assert "Refund for order" in refunds and f"Order #{failed.pk}</td>" not in refunds
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    charge = LedgerEntry.objects.get(user=alice, kind="charge")
    assert rows[0] == ["Date", "Kind", "Amount", "Balance after", "Order", "Description"]
    assert rows[1:] == [[rows[1][0], "charge", str(charge.amount), str(charge.balance_after),
                         str(failed.pk), f"Order #{failed.pk}"]]
    assert Decimal(rows[1][2]) == charge.amount and rows[1][2].endswith("0") is (
        str(charge.amount).endswith("0"))


def test_transactions_take_the_same_queries_for_3_or_30_entries(alice, alice_client):
    # alice starts with her test deposit: 1 + 2 entries, then 30
    for n in range(2):
        ledger.deposit(alice.pk, Decimal(n + 1), memo="top-up")
    _html(alice_client, "transactions")
    few = _queries(alice_client, "transactions")
    for n in range(27):
        ledger.deposit(alice.pk, Decimal(n + 1), memo="top-up")

    assert _queries(alice_client, "transactions") == few


# --- service updates --------------------------------------------------------------------------

def test_service_updates_follow_our_prices_at_the_customers_discount(
        upstream, sandbox, alice, alice_client):
    service = make_service(upstream, "Default", name="Zebra followers")
    upstream_row = service.routes.get().provider_service
    before = pricing.base_rate(service)
    sandbox.update_service(upstream_row.upstream_id, rate=str(upstream_row.cost_rate * 2))
    assert sync_catalog(upstream).ok
    service = Service.objects.get(pk=service.pk)
    after = pricing.base_rate(service)
    service.enabled = False
    service.save()
    alice.discount_percent = Decimal(10)
    alice.save()

    html = _html(alice_client, "updates")

    kinds = list(ServiceUpdate.objects.filter(service=service).order_by("id")
                 .values_list("kind", "old_rate", "new_rate"))
    assert kinds == [("new", None, before), ("price_up", before, after),
                     ("disabled", after, None)]
    assert "New service" in html and "Price up" in html and "No longer available" in html
    for rate in (before, after):
        assert f">{shown_rate(quantize_rate(rate * Decimal('0.9')))}<" in html
    ProviderService.objects.get(pk=upstream_row.pk)  # the upstream row is there, but hidden:
    assert str(upstream_row.cost_rate) not in html and PROVIDER_NAME not in html


def test_service_updates_take_the_same_queries_for_3_or_30(upstream, alice_client):
    for _n in range(3):
        make_service(upstream, "Default")
    _html(alice_client, "updates")
    few = _queries(alice_client, "updates")
    for _n in range(27):
        make_service(upstream, "Default")

    assert _queries(alice_client, "updates") == few


# --- what no page shows, and how every page is built ------------------------------------------

def _every_page(client, orders: list[Order]) -> dict[str, str]:
    pages = {name: _html(client, name) for name in LIST_PAGES}
    for order in orders:
        pages[f"order {order.pk}"] = _html(client, "order_detail", order.pk)
    return pages


def test_no_page_shows_a_provider_an_upstream_id_or_a_cost(upstream, sandbox, alice,
                                                           alice_client):
    orders = list(orders_in_every_state(upstream, sandbox, alice).values())
    orders.append(failed_order(upstream, sandbox, alice))
    refills.request_refill(alice, orders[3].pk)
    drip = panel_dripfeed(upstream, alice)
    orders += [drip, *drip.runs_set.all(), subscription_order(upstream, alice)]
    refills.send_refills()  # the refill gets its upstream id
    # An upstream id the page could show by coincidence (our own ids grow through the test
    # session and may equal the sandbox's small ones): make it one nothing else can be.
    Refill.objects.exclude(upstream_id=None).update(upstream_id=987_654_301)
    Order.objects.filter(pk=orders[1].pk).update(start_count=123456)
    forbidden = {PROVIDER_NAME, "Hiddenprov", "out of stock", "sandbox-key", upstream.api_url}
    for order in Order.objects.filter(user=alice):
        if order.upstream_id:
            forbidden.add(str(order.upstream_id))
        if order.cost:
            forbidden.add(str(order.cost))
    for refill in Refill.objects.filter(user=alice).exclude(upstream_id=None):
        forbidden.add(f">{refill.upstream_id}<")
    for row in ProviderService.objects.filter(routes__isnull=False).distinct():
        forbidden.add(str(row.cost_rate))  # e.g. 1.850000

    pages = _every_page(alice_client, [Order.objects.get(pk=o.pk) for o in orders])

    assert len(pages) > len(LIST_PAGES)
    for name, html in pages.items():
        leaks = [text for text in forbidden if text in html]
        assert leaks == [], f"{name} shows {leaks}"


def test_every_page_has_csrf_on_its_post_forms_and_no_inline_script_or_style(
        upstream, sandbox, alice, alice_client):
    orders = list(orders_in_every_state(upstream, sandbox, alice).values())

    pages = _every_page(alice_client, orders)

    posts = 0
    for name, html in pages.items():
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], name
        assert re.findall(r"<style|\sstyle=|\son[a-z]+=|hx-on", html) == [], name
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S):
            posts += 1
            assert 'name="csrfmiddlewaretoken"' in form, name
    assert posts >= 3  # refill and cancel buttons, and the log-out form


@pytest.mark.parametrize("name", [n for n in LIST_PAGES if not n.startswith("transactions")])
def test_every_list_page_says_so_when_it_is_empty(bob, client, name):
    client.force_login(bob)

    html = _html(client, name)

    assert "Nothing here yet." in html or "No service matches." in html
