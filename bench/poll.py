"""One polling cycle over 20,000 live orders at the sandbox: requests, speed and queries.

Goals: one `status` request per 100 orders per provider (ceil(N/100) per cycle), and the same
number of queries for every batch of 100 — whether no order changed or every one completed,
and at 2,000 orders as at 20,000. The baseline in the same run is the client's `statuses()`
calls alone for the same ids: the floor no cycle can beat.

    make bench
    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.poll   # this one alone
"""

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

from bench.setup import bench_database

SIZES = (2_000, 20_000)
BATCH = 100
UPSTREAM_SERVICE = 102  # a plain Default service of the sandbox's catalog
QUANTITY = 100


@dataclass
class Figures:
    requests: int
    seconds: float
    orders: int
    batch_queries: list[int]  # queries of each batch of 100 (the baseline has none)
    other_queries: int  # claiming the due orders, loading the providers

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


def _upstream_orders(sandbox: Any, size: int) -> list[int]:
    """Create the orders at the sandbox through its store: thousands a second, no HTTP."""
    from providers.sandbox.store import NewOrder

    service = sandbox.store.service(UPSTREAM_SERVICE)
    sandbox.set_balance(sandbox.key, 10**9)
    now, ids = time.time(), []
    for number in range(size):
        new = NewOrder(service=service, link=f"https://instagram.com/p/bench-{size}-{number}",
                       quantity=QUANTITY, charge=Decimal("0.09"),
                       params={"quantity": str(QUANTITY)})
        order_id = sandbox.store.create_order(sandbox.key, new, now)
        assert isinstance(order_id, int), order_id
        ids.append(order_id)
    return ids


def _panel_orders(provider: Any, upstream_ids: list[int]) -> None:
    """The same orders on our side: sent, Pending, as the upstream shows them, and due."""
    from django.utils import timezone

    from orders.models import Category, Order, Route, Service
    from panel.models import User
    from providers.models import ProviderService

    user = User.objects.create(username=f"bench-{provider.pk}")
    upstream = ProviderService.objects.get(provider=provider, upstream_id=UPSTREAM_SERVICE)
    category, _ = Category.objects.get_or_create(name="Bench")
    service = Service.objects.create(category=category, name="bench", min_quantity=50,
                                     max_quantity=10_000)
    route = Route.objects.create(service=service, provider_service=upstream)
    past = timezone.now() - timedelta(hours=1)
    Order.objects.bulk_create(
        (Order(user=user, service=service, link=f"https://instagram.com/p/bench-{n}",
               quantity=QUANTITY, charged_units=QUANTITY, params={"quantity": str(QUANTITY)},
               rate=Decimal("1.17"), charge=Decimal("0.117"), cost=Decimal("0.09"),
               route=route, provider=provider, upstream_id=upstream_id,
               status=Order.Status.PENDING, start_count=0, remains=QUANTITY,
               upstream_charge=Decimal("0.09"), upstream_currency="USD", created_at=past,
               submitted_at=past, last_progress_at=past, next_check_at=past)
         for n, upstream_id in enumerate(upstream_ids)),
        batch_size=2_000)


def _make_due(provider: Any) -> None:
    from django.utils import timezone

    from orders.models import Order

    Order.objects.filter(provider=provider).update(
        next_check_at=timezone.now() - timedelta(seconds=1))


class _Meter:
    """Counts HTTP requests by action and database queries, cheaply (no SQL kept)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.queries = 0

    def count_query(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.queries += 1
        return execute(sql, params, many, context)


def _measured(fn: Any, per_batch: list[int] | None = None) -> tuple[Any, float, _Meter]:
    from django.db import connection

    from orders import polling
    from providers.client import Client

    meter = _Meter()
    real_post, real_apply = Client._post, polling.apply_replies

    def post(client: Client, action: str, params: Any) -> Any:
        meter.requests[action] += 1
        return real_post(client, action, params)

    def apply(chunk: Any, replies: Any) -> int:
        before = meter.queries
        try:
            return real_apply(chunk, replies)
        finally:
            if per_batch is not None:
                per_batch.append(meter.queries - before)

    with (mock.patch.object(Client, "_post", new=post),
          mock.patch.object(polling, "apply_replies", new=apply),
          connection.execute_wrapper(meter.count_query)):
        started = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - started
    return result, elapsed, meter


def _baseline(provider: Any, ids: list[int]) -> Figures:
    client = provider.client()
    replies, elapsed, meter = _measured(lambda: client.statuses(ids))
    assert len(replies) == len(ids)
    return Figures(meter.requests["status"], elapsed, len(ids), [], meter.queries)


def _cycle(size: int) -> Figures:
    from orders.polling import poll_orders

    per_batch: list[int] = []
    stats, elapsed, meter = _measured(lambda: poll_orders(limit=size), per_batch)
    assert stats.orders == size and stats.errors == 0, stats
    return Figures(meter.requests["status"], elapsed, stats.orders, per_batch,
                   meter.queries - sum(per_batch))


def run(size: int) -> dict[str, Figures]:
    from orders.models import Order
    from providers.models import Provider
    from providers.sandbox import SandboxServer
    from providers.sync import sync_catalog

    figures = {}
    # An hour per progress step: every order stays Pending until the speed changes.
    with SandboxServer(port=0, step_seconds=3600, partial_every=0) as sandbox:
        provider = Provider(name=f"bench-poll-{size}", api_url=sandbox.url)
        provider.api_key = sandbox.key
        provider.save()
        assert sync_catalog(provider).ok
        upstream_ids = _upstream_orders(sandbox, size)
        _panel_orders(provider, upstream_ids)

        figures["statuses() only (baseline)"] = _baseline(provider, upstream_ids)
        figures["poll cycle, nothing changed"] = _cycle(size)
        live = Order.objects.filter(provider=provider, status=Order.Status.PENDING).count()
        assert live == size, live

        sandbox.set_speed(0)  # every order is final at its next look: Completed
        _make_due(provider)
        figures["poll cycle, all completing"] = _cycle(size)
        done = Order.objects.filter(provider=provider, status=Order.Status.COMPLETED).count()
        assert done == size, done
    return figures


def _row(step: str, size: int, f: Figures) -> str:
    goal = math.ceil(size / BATCH)
    batches = (f"{min(f.batch_queries)}–{max(f.batch_queries)}" if f.batch_queries else "–")
    return (f"{step:29} {size:>7,} {f.requests:>8} {goal:>5} {f.seconds:>8.2f} "
            f"{f.per_second:>9,.0f} {batches:>13} {f.other_queries:>6}")


def main() -> None:
    with bench_database():
        results = {size: run(size) for size in SIZES}
    print("status polling of live orders (sandbox over HTTP, PostgreSQL), one provider")
    print(f"{'step':29} {'orders':>7} {'requests':>8} {'goal':>5} {'seconds':>8} "
          f"{'orders/s':>9} {'queries/batch':>13} {'other':>6}")
    for step in results[SIZES[-1]]:
        for size in SIZES:
            print(_row(step, size, results[size][step]))

    cycles = [(size, step, f) for size in SIZES for step, f in results[size].items()
              if f.batch_queries]
    requests_ok = all(f.requests == math.ceil(size / BATCH) for size, _, f in cycles)
    per_batch = {q for _, _, f in cycles for q in f.batch_queries}
    other = {f.other_queries for _, _, f in cycles}
    largest = results[SIZES[-1]]
    floor = largest["statuses() only (baseline)"].per_second
    print(f"goal: ceil(N/100) status requests per provider per cycle: "
          f"{'met' if requests_ok else 'MISSED'}")
    print(f"goal: queries per batch of 100 constant (nothing changed, all completing, "
          f"{SIZES[0]:,} and {SIZES[-1]:,} orders): "
          f"{'met' if len(per_batch) == 1 else 'MISSED'} ({min(per_batch)}–{max(per_batch)}); "
          f"queries outside the batches: {'constant' if len(other) == 1 else sorted(other)}")
    for step, f in largest.items():
        if f.batch_queries:
            print(f"{step} at {SIZES[-1]:,}: {f.per_second:,.0f} orders refreshed/s, "
                  f"{f.per_second / floor:.0%} of the statuses()-only floor "
                  f"({floor:,.0f}/s)")


if __name__ == "__main__":
    main()
