"""The report pages show and export what orders/reports.py computes (whose figures
test_admin_reports.py checks against sums of its own), in queries that do not grow."""

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders.models import Order
from orders.placing import place_order
from panel.models import LedgerEntry
from panel.templatetags.panel_money import money
from providers.sync import check_balance
from tests.conftest import make_customer, make_service
from tests.test_admin_access import make_admin
from tests.test_admin_reports import _send, make_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(catalog, sandbox, alice, bob):
    return make_history(catalog, sandbox, alice, bob)


@pytest.fixture
def admin(client):
    client.force_login(make_admin())
    return client


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_report_page_shows_the_totals_the_ledger_makes(admin, history):
    page = admin.get(reverse("desk:admin_reports")).content.decode()
    orders = Order.objects.filter(parent__isnull=True, created_at__gte=timezone.now()
                                  - timezone.timedelta(days=29))
    revenue = -sum(e.amount for e in LedgerEntry.objects.filter(
        order_id__in=orders.values("pk"), kind__in=["charge", "refund"]))
    assert f'data-figure="revenue">{money(revenue)}<' in page
    assert "<svg" in page and "chart-bar" in page and "<polyline" in page
    for table in ("day", "provider", "top", "service", "customer", "status", "refunds"):
        assert f'id="table-{table}"' in page


def test_every_table_has_its_csv(admin, history):
    today = timezone.localdate().isoformat()
    params = {"date_from": today, "date_to": today}
    rows = _csv(admin.get(reverse("desk:admin_report_csv", args=["customer"]), params))
    by_name = {r["customer"]: r for r in rows}
    for user in ("alice", "bob"):
        orders = Order.objects.filter(user__username=user, parent__isnull=True,
                                      created_at__date=timezone.localdate())
        net = -sum(e.amount for e in LedgerEntry.objects.filter(order_id__in=orders.values("pk")))
        assert Decimal(by_name[user]["revenue"]) == net
    for table in ("day", "provider", "service", "status", "top", "refunds"):
        assert _csv(admin.get(reverse("desk:admin_report_csv", args=[table]), params))
    assert admin.get(reverse("desk:admin_report_csv", args=["nope"])).status_code == 404


def test_reconciliation_lists_intervals_and_the_orders_charged_differently(admin, history,
                                                                           catalog):
    response = admin.get(reverse("desk:admin_reconciliation"), {"provider": catalog.pk})
    assert len(response.context["intervals"]) == 1
    history["undercosted"].refresh_from_db()
    assert [o.pk for o in response.context["page"].object_list] == [history["undercosted"].pk]
    assert response.context["unexplained"] == -history["undercosted"].cost_difference
    rows = _csv(admin.get(reverse("desk:admin_reconciliation_csv", args=["differences"]),
                          {"provider": catalog.pk}))
    assert [int(r["order"]) for r in rows] == [history["undercosted"].pk]
    intervals = _csv(admin.get(reverse("desk:admin_reconciliation_csv", args=["intervals"]),
                               {"provider": catalog.pk}))
    assert Decimal(intervals[0]["difference"]) == -history["undercosted"].cost_difference


def test_the_dashboard_shows_today_in_flight_attention_and_failures(admin, history):
    response = admin.get(reverse("desk:admin_dashboard"))
    page = response.content.decode()
    board = response.context["board"]
    assert f'data-figure="in-flight">{board.in_flight}<' in page
    assert f'href="{reverse("desk:order", args=[history["failed"].pk])}"' in page
    assert "Sandbox" in page


def _count(client, name, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse(name), params).status_code == 200
    return len(captured)


def test_report_pages_run_the_same_queries_for_more_orders(admin, catalog, sandbox):
    service = make_service(catalog, "Default")
    check_balance(catalog)
    counts = []
    for round_ in range(2):
        for i in range(3 * round_ + 2):
            user = make_customer(f"c{round_}-{i}")
            _send(place_order(user, service.pk, {"link": f"https://x.com/{round_}-{i}",
                                                 "quantity": 1000}))
        check_balance(catalog)
        counts.append((_count(admin, "desk:admin_reports"),
                       _count(admin, "desk:admin_reconciliation", provider=catalog.pk),
                       _count(admin, "desk:admin_dashboard")))
    assert counts[0] == counts[1]
