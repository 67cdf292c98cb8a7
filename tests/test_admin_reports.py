"""The report's figures and the reconciliation equal sums this test makes itself from the
ledger's rows and the orders' columns, for orders that went through placing, dispatch and
the poll against the sandbox (completed, partial, canceled, failed, in flight)."""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch, polling, reports
from orders.models import Order
from orders.placing import place_order
from panel.models import LedgerEntry
from panel.money import quantize_money
from providers.models import ProviderBalanceCheck, ProviderService
from providers.sync import check_balance
from tests.conftest import make_customer, make_service, make_staff

pytestmark = pytest.mark.django_db


def _poll(*orders):
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        next_check_at=timezone.now() - timedelta(seconds=1))
    polling.poll_orders()


def _send(order):
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    return order


@pytest.fixture
def history(catalog, sandbox, alice, bob):
    return make_history(catalog, sandbox, alice, bob)


def make_history(catalog, sandbox, alice, bob):
    """Orders of every ending, and one the upstream charged more for than its snapshot."""
    service = make_service(catalog, "Default")
    other = make_service(catalog, "Default", upstream={"upstream_id__gt": service.routes.get()
                                                       .provider_service.upstream_id})
    link = iter(f"https://x.com/p{i}" for i in range(100))

    def place(user, svc, quantity):
        return place_order(user, svc.pk, {"link": next(link), "quantity": quantity})

    check_balance(catalog)
    completed = _send(place(alice, service, 1000))
    partial = _send(place(alice, other, 2000))
    canceled = _send(place(bob, service, 1000))
    failed = place(bob, other, 1000)
    assert failed.fail_and_refund(make_staff("sam").pk, "tried as a new user would")
    in_flight = _send(place(alice, service, 1000))
    # Our copy of the upstream's price was stale and low when this one was placed.
    upstream = other.routes.get().provider_service
    real_rate = upstream.cost_rate
    ProviderService.objects.filter(pk=upstream.pk).update(cost_rate=real_rate / 2)
    undercosted = _send(place(bob, other, 1000))
    ProviderService.objects.filter(pk=upstream.pk).update(cost_rate=real_rate)
    # Placed long ago: outside any range of the last days.
    old = _send(place(alice, service, 1000))
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    sandbox.force_order(partial.upstream_id, status="Partial", remains=500)
    sandbox.force_order(canceled.upstream_id, status="Canceled")
    sandbox.force_order(in_flight.upstream_id, status="In progress", remains=1000)
    _poll(completed, partial, canceled, in_flight, undercosted, old)
    check_balance(catalog)
    return {"completed": completed, "partial": partial, "canceled": canceled,
            "failed": failed, "in_flight": in_flight, "undercosted": undercosted, "old": old}


def _range():
    today = timezone.localdate()
    return reports.day_range(today - timedelta(days=6), today)


def _expected(key):
    """Sums by `key(order)` over this week's orders, from ledger rows and order columns."""
    start, end = _range()
    sums = defaultdict(lambda: defaultdict(Decimal))
    for order in Order.objects.filter(parent__isnull=True, created_at__gte=start,
                                      created_at__lt=end).select_related("provider"):
        entries = LedgerEntry.objects.filter(order_id=order.pk)
        charged = -sum(e.amount for e in entries if e.kind == "charge")
        refunded = sum(e.amount for e in entries if e.kind == "refund")
        revenue = charged - refunded
        kept = revenue / order.charge
        row = sums[key(order)]
        row["orders"] += 1
        row["revenue"] += revenue
        row["cost"] += quantize_money(order.cost * kept)
        if order.upstream_charge is not None:
            upstream = quantize_money(order.upstream_charge * order.provider.rate_to_panel)
            row["reported"] += quantize_money(upstream * kept)
            row["reported_orders"] += 1
    return sums


def _same(figures, expected):
    assert figures.orders == expected["orders"]
    assert figures.revenue == expected["revenue"]
    assert figures.cost == expected["cost"]
    assert figures.profit == expected["revenue"] - expected["cost"]
    assert figures.reported_orders == expected["reported_orders"]
    assert figures.reported_cost == expected["reported"]


def test_totals_and_every_grouping_equal_sums_from_the_ledger_and_orders(history):
    start, end = _range()
    total = _expected(lambda o: "all")["all"]
    _same(reports.totals(start, end), total)
    assert total["orders"] == 6  # the old order is outside the range
    for rows, key in [(reports.by_customer(start, end), lambda o: o.user_id),
                      (reports.by_service(start, end), lambda o: o.service_id),
                      (reports.by_provider(start, end), lambda o: o.provider_id),
                      (reports.by_status(start, end), lambda o: o.status)]:
        expected = _expected(key)
        assert {r.key for r in rows} == set(expected)
        for row in rows:
            _same(row, expected[row.key])
    days = reports.by_day(start, end)
    assert len(days) == 7
    expected = _expected(lambda o: timezone.localtime(o.created_at).date())
    for day in days:
        if day.key in expected:
            _same(day, expected[day.key])
        else:
            assert day.orders == 0 and day.revenue == 0


def test_canceled_and_failed_orders_earn_and_cost_nothing_a_partial_its_share(history):
    start, end = _range()
    by_status = {r.key: r for r in reports.by_status(start, end)}
    assert by_status["canceled"].revenue == 0 and by_status["canceled"].cost == 0
    assert by_status["failed"].revenue == 0 and by_status["failed"].cost == 0
    partial = history["partial"]
    partial.refresh_from_db()
    assert by_status["partial"].revenue == partial.charge - partial.refunded
    assert by_status["partial"].cost == quantize_money(partial.cost * Decimal("0.75"))


def test_the_upstreams_own_charge_shows_where_it_differs(history):
    start, end = _range()
    order = history["undercosted"]
    order.refresh_from_db()
    assert order.cost_difference and order.cost_difference > 0
    total = reports.totals(start, end)
    assert total.reported_difference == order.cost_difference
    assert total.profit_at_reported == total.profit - order.cost_difference
    provider = order.provider
    assert list(reports.charge_differences(provider, start, end)) == [order]


def test_refunds_by_cause_and_by_whom(history):
    start, end = _range()
    causes = {(c.cause, c.by_staff): c for c in reports.refunds(start, end)}
    assert set(causes) == {("partial", False), ("canceled", False), ("failed", True)}
    for (cause, _), row in causes.items():
        entries = LedgerEntry.objects.filter(
            kind="refund", order_id__in=Order.objects.filter(status=cause).values("pk"))
        assert row.refunds == entries.count()
        assert row.amount == sum(e.amount for e in entries)


def test_reconciliation_between_balance_checks(history, catalog, sandbox):
    start, end = _range()
    checks = list(ProviderBalanceCheck.objects.filter(provider=catalog).order_by("checked_at"))
    assert len(checks) == 2
    [interval] = reports.reconcile(catalog, start, end)
    assert interval.moved == checks[1].balance - checks[0].balance
    sent = Order.objects.filter(provider=catalog, submitted_at__gt=checks[0].checked_at,
                                submitted_at__lte=checks[1].checked_at)
    assert interval.sent_orders == sent.count() == 6
    assert interval.sent_cost == sum(o.cost for o in sent)
    partial, canceled = history["partial"], history["canceled"]
    partial.refresh_from_db()
    canceled.refresh_from_db()
    assert interval.returned == canceled.cost + quantize_money(partial.cost / 4)
    # The one the upstream charged more for than its snapshot is the whole difference.
    history["undercosted"].refresh_from_db()
    assert interval.difference == -history["undercosted"].cost_difference


def test_a_top_up_is_an_unexplained_movement_listed_not_hidden(catalog, sandbox):
    check_balance(catalog)
    sandbox.set_balance(sandbox.key, "2000")
    check_balance(catalog)
    start, end = _range()
    [interval] = reports.reconcile(catalog, start, end)
    assert interval.sent_orders == 0
    assert interval.difference == interval.moved != 0


def test_the_dashboard_counts_today(history):
    board = reports.dashboard()
    today = _expected(lambda o: timezone.localtime(o.created_at).date()).get(
        timezone.localdate(), {"orders": 0})
    assert board.today.orders == today["orders"]
    assert board.in_flight == Order.objects.filter(parent__isnull=True).exclude(
        status__in=Order.TERMINAL).count() == 1
    assert [o.pk for o in board.failures] == [history["failed"].pk]


def test_reports_take_the_same_queries_for_more_orders(catalog, sandbox,
                                                       django_assert_max_num_queries):
    service = make_service(catalog, "Default")
    customers = [make_customer(f"c{i}") for i in range(3)]
    start, end = _range()
    for round_ in range(2):
        for i, user in enumerate(customers):
            place_order(user, service.pk, {"link": f"https://x.com/{round_}-{i}",
                                           "quantity": 1000})
        with django_assert_max_num_queries(7):
            reports.totals(start, end)
            reports.by_day(start, end)
            reports.by_customer(start, end)
            reports.by_provider(start, end)
            reports.refunds(start, end)


def test_a_drip_feed_the_panel_runs_counts_once_with_its_runs_provider(catalog, sandbox, alice,
                                                                      settings):
    settings.POLL_FIRST_DELAY = 0
    dripfed = make_service(catalog, "Default", dripfeed=True, upstream={"dripfeed": False})
    parent = place_order(alice, dripfed.pk, {"link": "https://x.com/drip", "runs": 2,
                                             "interval": 10,
                                             "quantity": dripfed.min_quantity})
    dispatch.dispatch_one(parent.pk)
    polling.poll_orders()  # run 1 completes
    sandbox.set_fault("error", action="add", message="Incorrect link")
    Order.objects.filter(parent=parent, status=Order.Status.QUEUED).update(
        next_check_at=timezone.now())
    dispatch.dispatch_due()  # run 2 fails: the parent settles Partial, run 2's share back
    parent.refresh_from_db()
    assert parent.status == Order.Status.PARTIAL and parent.refunded > 0

    start, end = _range()
    [row] = reports.by_provider(start, end)
    assert row.key == catalog.pk and row.orders == 1  # the runs are parts, not orders
    revenue = parent.charge - parent.refunded
    assert row.revenue == revenue
    assert row.cost == quantize_money(parent.cost * revenue / parent.charge)
    runs = Order.objects.filter(parent=parent)
    assert row.reported_orders == 1
    assert row.reported_difference == quantize_money(
        sum(r.cost_difference for r in runs if r.cost_difference is not None)
        * revenue / parent.charge)
