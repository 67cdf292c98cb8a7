"""Catalog sync of 10,000 services from the sandbox: seconds and queries.

Goal: under 5 seconds, and the same number of queries whatever the catalog size. The
baseline in the same run is the upstream fetch and parse alone (`client.services()`), the
floor no sync can beat; the 1,000-service run shows the query count does not grow.

    make bench
    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.sync   # this one alone
"""

import time

from bench.setup import bench_database


def _timed(fn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - started
    return result, elapsed, len(ctx.captured_queries)


def run(size: int) -> dict[str, tuple[float, int]]:
    from providers.models import Provider
    from providers.sandbox import SandboxServer
    from providers.sync import sync_catalog

    figures = {}
    with SandboxServer(port=0, step_seconds=0, catalog_size=size) as sandbox:
        provider = Provider(name=f"bench-{size}", api_url=sandbox.url)
        provider.api_key = sandbox.key
        provider.save()
        _, fetch, _ = _timed(lambda: provider.client().services())
        figures["fetch only (baseline)"] = (fetch, 0)
        result, first, q1 = _timed(lambda: sync_catalog(provider))
        assert result.ok and result.created == size, result
        figures["first import"] = (first, q1)
        result, again, q2 = _timed(lambda: sync_catalog(provider))
        assert result.ok and result.updated == 0, result
        figures["re-sync, nothing changed"] = (again, q2)
        services = sandbox.services()
        for service in services[: size // 10]:
            sandbox.update_service(service["service"], rate="99.5")
        sandbox.remove_services([s["service"] for s in services[-size // 10:]])
        result, changed, q3 = _timed(lambda: sync_catalog(provider))
        assert result.updated == size // 10 and result.retired == size // 10, result
        figures["re-sync, 10% changed, 10% gone"] = (changed, q3)
    return figures


def main() -> None:
    with bench_database():
        results = {size: run(size) for size in (1_000, 10_000)}
    print("catalog sync (sandbox over HTTP, PostgreSQL)")
    print(f"{'step':34} {'1,000 s':>9} {'q':>4} {'10,000 s':>9} {'q':>4}")
    for step in results[10_000]:
        small, large = results[1_000][step], results[10_000][step]
        print(f"{step:34} {small[0]:9.3f} {small[1]:4d} {large[0]:9.3f} {large[1]:4d}")
    worst = max(t for t, _ in results[10_000].values())
    constant = all(results[1_000][s][1] == results[10_000][s][1] for s in results[10_000])
    print(f"goal: every 10,000-service step under 5 s: {'met' if worst < 5 else 'MISSED'} "
          f"(slowest {worst:.2f} s); queries constant across sizes: "
          f"{'yes' if constant else 'NO'}")


if __name__ == "__main__":
    main()
