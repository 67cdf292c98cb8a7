"""A chaos run: the panel as separate processes, orders from concurrent API clients while the
upstream misbehaves on a schedule, the worker is killed mid-send, the broker restarts and two
beats run at once; then, once the panel has settled, every invariant.

    make bench                                    # the long run, with the other benchmarks
    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.chaos [--short]

The short run (a few hundred orders, under four minutes here) is tests/test_chaos.py, marked
`slow`. Exits 1 on any breach: a wrong reply, a double buy, money out of place, an HTTP 5xx,
an order not at rest when the time to settle is up.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.setup import bench_database


@dataclass(frozen=True)
class Plan:
    orders: int  # `add` calls in all, across the clients
    clients: int
    load_seconds: float  # the adds are spread over this long, faults and events under way
    fault_seconds: float  # each fault lasts this long, then as long with none
    two_beats_seconds: float
    settle_seconds: float
    panel_dripfeed: bool  # also drip-feed run by the panel itself (runs a minute apart)


# Settling waits out polling's 5-minute lease on status batches that failed under a fault
# (orders/polling.py LEASE), hence the long settle limits.
SHORT = Plan(orders=300, clients=12, load_seconds=45, fault_seconds=3, two_beats_seconds=15,
             settle_seconds=360, panel_dripfeed=False)
LONG = Plan(orders=2500, clients=20, load_seconds=240, fault_seconds=5, two_beats_seconds=60,
            settle_seconds=900, panel_dripfeed=True)
# The upstream's misbehaviours, in turn (providers/sandbox/server.py FAULT_NAMES): each on
# every action, so sends and status polls alike meet it. Delays beat the read timeout (3 s).
FAULTS: list[dict[str, Any]] = [
    {"fault": "timeout_after", "delay": 4}, {"fault": "http500"}, {"fault": "html"},
    {"fault": "garbage"}, {"fault": "truncated"}, {"fault": "timeout_before", "delay": 4},
    {"fault": "error", "action": "add"}, {"fault": "http429"}, {"fault": "refuse", "delay": 3},
    {"fault": "latency", "delay": 1},
]


@dataclass
class Call:
    """One API call and what came back; `link` names an `add` (each is unique)."""

    client: int
    action: str
    link: str = ""
    http: int | None = None
    reply: Any = None
    failure: str = ""


@dataclass
class Clients:
    """Concurrent API clients, each a customer of its own, until `orders` adds were made."""

    url: str
    keys: list[tuple[int, str]]
    services: list[Any]
    orders: int
    seconds: float
    panel_dripfeed_service: Any = None
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _adds: int = 0

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                   for n in range(len(self.keys))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _next_add(self) -> int | None:
        with self._lock:
            if self._adds >= self.orders:
                return None
            self._adds += 1
            return self._adds

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        pause = len(self.keys) * self.seconds / self.orders / 1.25  # adds are 4 calls in 5
        session = requests.Session()
        _, key = self.keys[n]
        mine: list[int] = []
        while True:
            time.sleep(rng.expovariate(1 / pause))
            roll = rng.random()
            if roll < 0.2 and mine:
                ids = ",".join(str(i) for i in rng.sample(mine, min(len(mine), 20)))
                self._call(session, Call(n, "status"), {"key": key, "action": "status",
                                                        "orders": ids})
                continue
            if roll < 0.25:
                action = rng.choice(["balance", "services"])
                self._call(session, Call(n, action), {"key": key, "action": action})
                continue
            number = self._next_add()
            if number is None:
                return
            link = f"https://instagram.com/p/chaos-{n}-{number}"
            call = self._call(session, Call(n, "add", link),
                              {"key": key, "action": "add", **self._order(rng, link)})
            if isinstance(call.reply, dict) and "order" in call.reply:
                mine.append(int(call.reply["order"]))

    def _order(self, rng: random.Random, link: str) -> dict[str, Any]:
        service = rng.choice(self.services)
        params: dict[str, Any] = {"service": service.pk, "link": link}
        if service.type == "Default":
            params["quantity"] = service.min_quantity
            if service.dripfeed and rng.random() < 0.5:
                params.update(runs=2, interval=1)
        elif service.type == "Custom Comments":
            params["comments"] = "\n".join(f"nice {i}" for i in range(service.min_quantity))
        if self.panel_dripfeed_service is not None and rng.random() < 0.05:
            params = {"service": self.panel_dripfeed_service.pk, "link": link, "runs": 2,
                      "interval": 1, "quantity": self.panel_dripfeed_service.min_quantity}
        return params

    def _call(self, session: requests.Session, call: Call, data: dict[str, Any]) -> Call:
        try:
            reply = session.post(f"{self.url}/api/v2", data=data, timeout=60)
            call.http = reply.status_code
            call.reply = reply.json()
        except (requests.RequestException, ValueError) as exc:
            call.failure = f"{type(exc).__name__}: {exc}"[:200]
        with self._lock:
            self.calls.append(call)
        return call


def _schedule(cluster: Any, plan: Plan, stop: threading.Event, log: list[str],
              events_done: threading.Event) -> None:
    """Faults in turn all through the load, and once each: kill -9 of the worker in the
    middle of sends, a broker restart, a second beat for a while."""
    started = time.monotonic()
    events = ["kill", "broker", "two beats"]
    turn = 0

    def note(text: str) -> None:
        log.append(f"{time.monotonic() - started:6.1f} s  {text}")

    while not stop.is_set():
        for line in cluster.revive():
            note(line)
        fault = FAULTS[turn % len(FAULTS)]
        cluster.set_fault(**fault)
        note(f"fault {fault}")
        stop.wait(plan.fault_seconds)
        cluster.clear_faults()
        if turn % 2 == 1 and events:
            event = events.pop(0)
            if event == "kill":
                # Slow the upstream's adds so that sends are out when the worker dies.
                cluster.set_fault("latency", action="add", delay=2.5)
                time.sleep(1.5)
                cluster.kill_worker()
                note("kill -9 of the worker during sends")
                cluster.clear_faults()
                time.sleep(2)
                cluster.start_worker()
                note("worker restarted")
            elif event == "broker":
                cluster.restart_redis(down_seconds=3)
                note("broker restarted after 3 s down (its queue lost)")
            else:
                cluster.start_beat("beat2")
                note("a second beat started")
                stop.wait(plan.two_beats_seconds)
                cluster.stop("beat2")
                note("the second beat stopped")
        else:
            stop.wait(plan.fault_seconds)
        if not events and turn >= len(FAULTS) - 1:
            events_done.set()  # every event and every fault has happened once
        turn += 1
    cluster.clear_faults()
    note("faults cleared")


def replies_match(calls: list[Call]) -> tuple[list[str], dict[str, Any]]:
    """Every API reply against the database: an order id names that customer's order for
    that link with its charge; an error reply means nothing was written for its link."""
    from orders.models import Order
    from panel.models import LedgerEntry

    breaches: list[str] = []
    customers: dict[int, set[int]] = {}
    adds = [c for c in calls if c.action == "add"]
    orders = {o.link: o for o in Order.objects.filter(
        link__in=[c.link for c in adds], parent__isnull=True)}
    charged = dict(LedgerEntry.objects.filter(kind="charge").values_list("order_id", "amount"))
    outcomes: Counter[str] = Counter()
    for call in calls:
        if call.failure:
            breaches.append(f"client {call.client} {call.action} {call.link}: no reply "
                            f"({call.failure})")
            continue
        if call.http is None or call.http >= 500 or call.http != 200:
            breaches.append(f"client {call.client} {call.action}: HTTP {call.http}")
        if call.action == "status" and isinstance(call.reply, dict):
            wrong = [k for k, v in call.reply.items() if "error" in v]
            if wrong:
                breaches.append(f"client {call.client}: status of own orders {wrong} refused")
    for call in adds:
        if call.failure:
            continue
        order = orders.get(call.link)
        reply = call.reply if isinstance(call.reply, dict) else {}
        if "order" in reply:
            outcomes["ok"] += 1
            customers.setdefault(call.client, set()).add(reply["order"])
            if order is None or order.pk != reply["order"]:
                breaches.append(f"{call.link}: replied order {reply['order']}, database has "
                                f"{order.pk if order else None}")
            elif -charged.get(order.pk, 0) != order.charge:
                breaches.append(f"order {order.pk}: charge entry {charged.get(order.pk)} "
                                f"for a price of {order.charge}")
        else:
            outcomes[f"error: {reply.get('error')}"] += 1
            if order is not None:
                breaches.append(f"{call.link}: error reply {reply} but order {order.pk} "
                                "was written")
    by_user = dict(Order.objects.filter(pk__in=[o.pk for o in orders.values()])
                   .values_list("pk", "user__username"))
    for client, ids in customers.items():
        strangers = [i for i in ids if by_user.get(i) != f"client{client}"]
        if strangers:
            breaches.append(f"client {client}: orders {strangers} belong to someone else")
    figures = {"API calls": len(calls), "by action": dict(Counter(c.action for c in calls)),
               "add replies": dict(outcomes),
               "HTTP 5xx": sum(1 for c in calls if c.http and c.http >= 500),
               "no reply": sum(1 for c in calls if c.failure)}
    return breaches, figures


def run(plan: Plan) -> int:
    from bench.cluster import Cluster
    from bench.invariants import check_all, settle

    with bench_database("_chaos"), tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        started = time.monotonic()
        with Cluster(Path(tmp), sandbox_step=1.0) as cluster:
            setup = cluster.setup_catalog(customers=plan.clients, deposit="100000")
            services = setup["services"]
            from tests.conftest import make_service

            dripfeed = make_service(setup["provider"], "Default", upstream={"dripfeed": True},
                                    one_order_per_link=False)
            services.append(dripfeed)
            panel_run = None
            if plan.panel_dripfeed:  # an upstream without drip-feed: the panel runs it
                panel_run = services[0]
                type(panel_run).objects.filter(pk=panel_run.pk).update(dripfeed=True)
                panel_run.refresh_from_db()
            from django.db import connection

            connection.close()
            cluster.start_worker()
            cluster.start_beat()
            clients = Clients(cluster.web_url, setup["keys"], services, plan.orders,
                              plan.load_seconds, panel_dripfeed_service=panel_run)
            stop, events_done, log = threading.Event(), threading.Event(), list[str]()
            chaos = threading.Thread(target=_schedule,
                                     args=(cluster, plan, stop, log, events_done))
            chaos.start()
            try:
                clients.run()
            finally:
                loaded = time.monotonic()
                # Every scheduled event happens once, however fast the load was.
                while chaos.is_alive() and not events_done.wait(0.5):
                    pass
                stop.set()
                chaos.join()
            def revive() -> None:
                for line in cluster.revive():
                    log.append(f"{time.monotonic() - started:6.1f} s  {line}")

            waited, left = settle(plan.settle_seconds, revive)
            breaches, figures = replies_match(clients.calls)
            more, money = check_all(cluster.sandbox_adds())
            breaches += more
            if left:
                breaches.append(f"not settled after {waited:.0f} s: {left}")
            processes = {name: p.alive() for name, p in cluster.processes.items()}
        connection.close()
    _report(plan, log, figures, money, loaded - started, waited, processes, breaches)
    return 1 if breaches else 0


def _report(plan: Plan, log: list[str], figures: dict[str, Any], money: dict[str, Any],
            load_seconds: float, settle_seconds: float, processes: dict[str, bool],
            breaches: list[str]) -> None:
    print(f"chaos run: {plan.orders} orders from {plan.clients} clients, "
          f"{load_seconds:.0f} s of load and faults, then {settle_seconds:.0f} s to settle")
    print("what happened:")
    for line in log:
        print(f"  {line}")
    for name, value in {**figures, **money}.items():
        print(f"{name}: {value}")
    print(f"processes alive at the end: {processes}")
    exits = [line for line in log if "exited by itself" in line]
    print(f"processes that exited by themselves (restarted as compose would): {len(exits)}")
    if breaches:
        print(f"BREACHES ({len(breaches)}):")
        for breach in breaches[:30]:
            print(f"  {breach}")
    else:
        print("every invariant held: 0 wrong replies, 0 double buys, 0 HTTP 5xx, "
              "the ledger to the cent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--short", action="store_true", help="the CI version (a few hundred)")
    args = parser.parse_args(argv)
    return run(SHORT if args.short else LONG)


if __name__ == "__main__":
    sys.exit(main())
