"""Server time of the customer's busiest pages against floors in the same run.

A customer with 10,000 orders, 5,000 services for sale. Each page is asked for through the
whole middleware stack (Django's test client, no network), and so is its floor: the same rows
from the same queries rendered by a bare template (bench/pages_urls.py). Goal: each page under
50 ms median and at most 1.5× its floor; queries the same with 1,000 and 10,000 orders.

    make bench
    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.pages   # this one alone
"""

import statistics
import time
from decimal import Decimal

from bench.setup import bench_database

SERVICES = 5000
ORDERS = 10_000
REQUESTS = 60
GOAL_MS = 50.0
GOAL_RATIO = 1.5


def _prepare():
    from orders.importing import import_services
    from orders.models import Order
    from panel import ledger
    from panel.models import User
    from providers.models import Provider
    from providers.sandbox import SandboxServer
    from providers.sync import sync_catalog

    with SandboxServer(port=0, step_seconds=0, catalog_size=SERVICES) as sandbox:
        provider = Provider(name="bench", api_url=sandbox.url)
        provider.api_key = sandbox.key
        provider.save()
        assert sync_catalog(provider).ok
    services = import_services(provider)
    user = User.objects.create_user("bench", "bench@example.com", "x" * 12)
    ledger.deposit(user.pk, Decimal("1000000"))
    statuses = [s for s, _ in Order.Status.choices]
    default = next(s for s in services if s.type == "Default")
    Order.objects.bulk_create(
        Order(user=user, service=services[i % len(services)], link=f"https://x.com/p/{i}",
              quantity=1000, charged_units=1000, rate=Decimal("1.2"), charge=Decimal("1.2"),
              cost=Decimal("1"), status=statuses[i % len(statuses)], start_count=i,
              remains=i % 1000)
        for i in range(ORDERS))
    from django.db import connection

    with connection.cursor() as cursor:  # as autovacuum would after such a load
        cursor.execute("VACUUM ANALYZE")
    return user, default.pk


def _queries(client, url: str) -> tuple[int, int]:
    """The queries of one request and the response's size."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)  # warm caches and template loading
    assert response.status_code == 200, (url, response.status_code)
    connection.queries_log.clear()  # a full log (it keeps 9,000) would make the capture empty
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return len(ctx.captured_queries), len(response.content)  # read now: the log is per request


def _measure(client, url: str, floor_url: str) -> tuple[float, float]:
    """Median milliseconds of the page and of its floor over REQUESTS each, asked for in
    turn, so that whatever else the machine does slows both alike."""
    page: list[float] = []
    floor: list[float] = []
    for _ in range(REQUESTS):
        for times, address in ((page, url), (floor, floor_url)):
            started = time.perf_counter()
            client.get(address)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(page), statistics.median(floor)


def main() -> int:
    from django.test import Client, override_settings

    from orders.models import Order

    user, service_id = _prepare()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    pages = [
        ("new order (a service chosen)", f"/?service={service_id}",
         f"/floor/new-order?service={service_id}"),
        # category= searches every category, whatever the session remembers.
        ("service search 'Follow'", "/order/services?q=Follow&category=",
         "/floor/search?q=Follow"),
        ("services", "/services/", "/floor/services"),
        ("orders", "/orders/", "/floor/orders"),
    ]
    failed = 0
    with override_settings(ROOT_URLCONF="bench.pages_urls", DEBUG=False):
        few = {}
        extra = list(Order.objects.filter(user=user).values_list("pk", flat=True)[1000:])
        # Queries with 1,000 orders first, then with all 10,000.
        hidden = Order.objects.filter(pk__in=extra).update(user=_other_user())
        for name, url, _ in pages:
            few[name] = _queries(client, url)[0]
        Order.objects.filter(pk__in=extra).update(user=user)
        print(f"{SERVICES} services for sale, {ORDERS} orders ({hidden} hidden for the "
              f"1,000-order query count); median of {REQUESTS} requests")
        print(f"{'page':32} {'ms':>7} {'floor ms':>9} {'ratio':>6} {'queries':>12} {'KB':>6}")
        for name, url, floor_url in pages:
            queries, size = _queries(client, url)
            _queries(client, floor_url)
            ms, floor_ms = _measure(client, url, floor_url)
            ratio = ms / floor_ms
            ok = ms < GOAL_MS and ratio <= GOAL_RATIO and queries == few[name]
            failed += not ok
            print(f"{name:32} {ms:7.1f} {floor_ms:9.1f} {ratio:6.2f} "
                  f"{few[name]:>5} → {queries:<5} {size / 1024:6.0f} {'ok' if ok else 'MISSED'}")
    print(f"goal: under {GOAL_MS:.0f} ms, at most {GOAL_RATIO}× the floor, queries constant")
    return failed


def _other_user():
    from panel.models import User

    return User.objects.create_user("elsewhere", "elsewhere@example.com", "x" * 12)


if __name__ == "__main__":
    with bench_database():
        missed = main()
    raise SystemExit(1 if missed else 0)
