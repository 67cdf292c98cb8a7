"""The admin desk against floors in the same run: the provider catalog page with 10,000
upstream services, the services editor with 10,000 services for sale, and a bulk import of
5,000 services.

The page is asked for through the whole middleware stack (Django's test client), and so is
its floor: the same rows from the same queries in a bare template (bench/admin_urls.py).
The import (orders/importing.py: categories, services, routes, the customers' change log)
is timed against a plain bulk_create of the same services and routes. Goal: pages under
100 ms median with the same queries at 1,000 and 10,000 services sold, the import under
5 s with the same queries at 500 and 5,000 services.

    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.admin
"""

import statistics
import time

from bench.setup import bench_database

UPSTREAM = 10_000
IMPORT = 5_000
REQUESTS = 30
PAGE_GOAL_MS = 100.0
IMPORT_GOAL_S = 5.0


def _prepare():
    from orders.importing import ImportPlan, import_selected, importable
    from panel.models import User
    from providers.models import Provider
    from providers.sandbox import SandboxServer
    from providers.sync import sync_catalog

    with SandboxServer(port=0, step_seconds=0, catalog_size=UPSTREAM) as sandbox:
        provider = Provider(name="bench", api_url=sandbox.url)
        provider.api_key = sandbox.key
        provider.save()
        assert sync_catalog(provider).ok
    rows = list(importable(provider))
    import_selected(rows[:1000], ImportPlan(map_categories=True))  # the rest after counting
    admin = User.objects.create_superuser("bench-admin", "admin@example.com", "x" * 12)
    from django.db import connection

    with connection.cursor() as cursor:  # as autovacuum would after such a load
        cursor.execute("ANALYZE")
    return provider, rows, admin


def _sell_the_rest(rows) -> None:
    from django.db import connection

    from orders.importing import ImportPlan, import_selected

    import_selected(rows, ImportPlan(map_categories=True))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _measure(client, url: str) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert client.get(url).status_code == 200, url
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    queries = len(ctx.captured_queries)
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), queries


def _timed_import(rows, name: str) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders.importing import ImportPlan, import_selected

    started = time.perf_counter()
    with CaptureQueriesContext(connection) as ctx:
        import_selected(rows, ImportPlan(new_category=name, sync_name=True))
    return time.perf_counter() - started, len(ctx.captured_queries)


def _plain_bulk_create(rows) -> float:
    from django.db import transaction

    from orders.models import Category, Route, Service

    started = time.perf_counter()
    with transaction.atomic():
        category = Category.objects.create(name="plain bulk_create", position=999)
        services = Service.objects.bulk_create(
            Service(category=category, name=u.name, type=u.type, min_quantity=u.min_quantity,
                    max_quantity=max(u.max_quantity, u.min_quantity)) for u in rows)
        Route.objects.bulk_create(Route(service=s, provider_service=u)
                                  for s, u in zip(services, rows, strict=True))
    return time.perf_counter() - started


def main() -> int:
    from django.test import Client, override_settings

    provider, rows, admin = _prepare()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    failed = 0
    print(f"{UPSTREAM} upstream services, each sold (queries counted first with 1,000 sold); "
          f"median of {REQUESTS} requests")
    with override_settings(ROOT_URLCONF="bench.admin_urls", DEBUG=False,
                           STAFF_REQUIRE_MFA=False):
        pages = [("catalog page", f"/staff/admin/providers/{provider.pk}/catalog/",
                  f"/floor/catalog/{provider.pk}/"),
                 ("catalog, filtered", f"/staff/admin/providers/{provider.pk}/catalog/"
                  "?q=Followers&type=Default",
                  f"/floor/catalog/{provider.pk}/?q=Followers&type=Default"),
                 ("services editor", "/staff/admin/services/", "/floor/services/"),
                 ("providers list", "/staff/admin/providers/", None)]
        # Queries with 1,000 services for sale first, then with all 10,000.
        few = {name: _measure(client, url)[1] for name, url, _ in pages}
        _sell_the_rest(rows[1000:])
        print(f"{'page':24} {'ms':>7} {'floor ms':>9} {'queries':>12}")
        for name, url, floor_url in pages:
            ms, queries = _measure(client, url)
            floor = f"{_measure(client, floor_url)[0]:9.1f}" if floor_url else f"{'—':>9}"
            ok = ms < PAGE_GOAL_MS and queries == few[name]
            failed += not ok
            print(f"{name:24} {ms:7.1f} {floor} {few[name]:>5} → {queries:<5} "
                  f"{'ok' if ok else 'MISSED'}")
    sold_again = rows[1::2]  # sold again, as an admin may (into another category)
    _, few_q = _timed_import(sold_again[:500], "bench import 500")
    many_s, many_q = _timed_import(sold_again[:IMPORT], f"bench import {IMPORT}")
    plain_s = _plain_bulk_create(sold_again[:IMPORT])
    ok = many_s < IMPORT_GOAL_S and few_q == many_q
    failed += not ok
    print(f"import of {IMPORT}: {many_s:.2f} s (plain bulk_create {plain_s:.2f} s); "
          f"queries {few_q} for 500 → {many_q} for {IMPORT} {'ok' if ok else 'MISSED'}")
    print(f"goal: pages under {PAGE_GOAL_MS:.0f} ms, import under {IMPORT_GOAL_S:.0f} s, "
          "queries constant")
    return failed


if __name__ == "__main__":
    with bench_database():
        missed = main()
    raise SystemExit(1 if missed else 0)
