"""API v2 throughput under gunicorn, against the floor: the same database work in a minimal
Django view (bench/floor_urls.py), measured side by side in the same run.

Goals: `add` and `status` (100 ids) each at least 0.7 of the floor's throughput; `status`
with 100 ids in a constant number of queries.

    make bench
    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.api   # this one alone
"""

import os
import subprocess
import sys
import threading
import time
from decimal import Decimal

import requests

from bench.setup import bench_database

THREADS = 8
SECONDS = 5.0
ROUNDS = 2


def _prepare() -> dict:
    from orders.models import Order
    from orders.placing import place_order
    from orders.pricing import charge_for, customer_rate
    from panel import ledger
    from panel.models import ApiKey, User
    from providers.models import Provider
    from providers.sandbox import SandboxServer
    from providers.sync import sync_catalog
    from tests.conftest import make_service

    sandbox = SandboxServer(port=0, step_seconds=0).start()
    provider = Provider(name="bench", api_url=sandbox.url)
    provider.api_key = sandbox.key
    provider.save()
    sync_catalog(provider)
    service = make_service(provider, "Default", one_order_per_link=False)
    user = User.objects.create_user("bench", "bench@example.com", "x" * 12)
    ledger.deposit(user.pk, Decimal("100000000"))
    _, key = ApiKey.issue(user)
    orders = [place_order(user, service.pk, {"link": f"https://x.com/{i}", "quantity": 1000})
              for i in range(100)]
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(status=Order.Status.IN_PROGRESS)
    rate = customer_rate(service, user)
    assert rate is not None
    charge = charge_for(rate, 1000, service.type)
    return {"sandbox": sandbox, "key": key, "service": service.pk, "charge": str(charge),
            "ids": ",".join(str(o.pk) for o in orders)}


def _status_queries(key: str, ids: str) -> tuple[int, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    counts = []
    Client(HTTP_HOST="127.0.0.1").post("/api/v2", {"key": key, "action": "balance"})  # warm
    for some in (ids.split(",")[:10], ids.split(",")):
        with CaptureQueriesContext(connection) as ctx:
            reply = Client(HTTP_HOST="127.0.0.1").post("/api/v2", {"key": key, "action": "status",
                                              "orders": ",".join(some)}).json()
        assert len(reply) == len(some), reply
        counts.append(len(ctx.captured_queries))
    return counts[0], counts[1]


def _gunicorn(port: int) -> subprocess.Popen:
    from django.db import connection

    db = connection.settings_dict
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 50,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false",
           "ROOT_URLCONF": "bench.floor_urls", "LOG_LEVEL": "WARNING",
           "API_RATE_LIMIT_PER_KEY": "1000000000", "API_RATE_LIMIT_PER_IP": "1000000000",
           "CELERY_BROKER_URL": os.environ.get("REDIS_URL") or "memory://",
           "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UhISE="}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "panel.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def _throughput(url: str, make_body) -> float:
    done = [0] * THREADS
    stop = time.monotonic() + SECONDS

    def worker(n: int) -> None:
        session = requests.Session()
        i = 0
        while time.monotonic() < stop:
            reply = session.post(url, data=make_body(n, i), timeout=30)
            assert reply.status_code == 200 and "error" not in reply.text[:20], reply.text[:200]
            i += 1
        done[n] = i

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def _interleaved(api: tuple, floor: tuple) -> tuple[float, float]:
    """API, floor, API, floor: the best of two rounds each, so that a noisy moment on this
    shared machine hurts both sides alike."""
    rounds = [(_throughput(*api), _throughput(*floor)) for _ in range(ROUNDS)]
    return max(r[0] for r in rounds), max(r[1] for r in rounds)


def main() -> None:
    from panel.devdb import free_port

    with bench_database():
        setup = _prepare()
        few, hundred = _status_queries(setup["key"], setup["ids"])
        from django.db import connection

        connection.close()  # gunicorn's workers need the database to themselves
        port = free_port()
        server = _gunicorn(port)
        try:
            base = f"http://127.0.0.1:{port}"
            add = {"key": setup["key"], "service": setup["service"], "quantity": 1000,
                   "charge": setup["charge"]}
            pairs = {
                "add": (
                    (f"{base}/api/v2", lambda n, i: {
                        **add, "action": "add", "link": f"https://x.com/a{n}-{i}"}),
                    (f"{base}/floor/add", lambda n, i: {
                        **add, "link": f"https://x.com/f{n}-{i}"})),
                "status (100 ids)": (
                    (f"{base}/api/v2", lambda n, i: {
                        "key": setup["key"], "action": "status", "orders": setup["ids"]}),
                    (f"{base}/floor/status", lambda n, i: {
                        "key": setup["key"], "orders": setup["ids"]})),
            }
            figures = {name: _interleaved(api, floor) for name, (api, floor) in pairs.items()}
        finally:
            server.terminate()
            server.wait(timeout=30)
            setup["sandbox"].stop()
    print(f"API v2 under gunicorn (2 workers, {THREADS} client threads, {SECONDS:.0f} s each)")
    print(f"{'call':18} {'API req/s':>10} {'floor req/s':>12} {'ratio':>6}  goal >= 0.7")
    for name, (api, floor) in figures.items():
        ratio = api / floor
        print(f"{name:18} {api:10.0f} {floor:12.0f} {ratio:6.2f}  "
              f"{'met' if ratio >= 0.7 else 'MISSED'}")
    print(f"status queries: 10 ids {few}, 100 ids {hundred}: "
          f"{'constant' if few == hundred else 'NOT constant'}")


if __name__ == "__main__":
    main()
