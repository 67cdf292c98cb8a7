"""API v2 throughput against its floor, side by side in one run.

The panel runs as in production (DEBUG off, Redis as cache and broker, gunicorn with 2
workers; rate limits off, as a benchmark would trip them). The floor is a standalone Django
app (bench/floor_app: its own settings, no middleware) doing the least database work the two
calls could do on the same tables. Both servers run on 127.0.0.1, and in each round one
`wrk` (Debian's `wrk` package: a compiled client, so the client costs little of the two
cores) drives each of them at the same time, so a noisy moment on this shared machine hurts
both alike; the ratio is the median of the rounds', and the rounds are printed.

Goals: `add` and `status` (100 ids) each at least 0.9 of the floor's throughput; `status`
in a constant number of database round trips; `add` in the fewest the money guarantees allow.
Round trips are counted on the wire (libpq's trace of the messages the client sends: each
Sync or simple Query waits for the server once), for one call of each, in process.

    make bench
    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.api   # this one alone
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import requests

from bench.setup import bench_database

GOAL = 0.9
CONNECTIONS = 16
SECONDS = 5
ROUNDS = 5
HERE = Path(__file__).resolve().parent


def _prepare() -> dict[str, str]:
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
    try:
        provider = Provider(name="bench", api_url=sandbox.url)
        provider.api_key = sandbox.key
        provider.save()
        sync_catalog(provider)
    finally:
        sandbox.stop()  # nothing is sent: no worker runs during the benchmark
    service = make_service(provider, "Default", one_order_per_link=False)
    setup = {"service": str(service.pk)}
    # A customer each, so that the two servers' charges never wait for one balance row.
    for side in ("api", "floor"):
        user = User.objects.create_user(side, f"{side}@example.com", "x" * 12)
        ledger.deposit(user.pk, Decimal("100000000"))
        _, setup[f"{side}_key"] = ApiKey.issue(user)
        orders = [place_order(user, service.pk, {"link": f"https://x.com/{i}", "quantity": 1000})
                  for i in range(100)]
        Order.objects.filter(pk__in=[o.pk for o in orders]).update(
            status=Order.Status.IN_PROGRESS)
        setup[f"{side}_ids"] = ",".join(str(o.pk) for o in orders)
    rate = customer_rate(service, user)
    assert rate is not None
    setup["charge"] = str(charge_for(rate, 1000, service.type))
    return setup


def _bodies(setup: dict[str, str]) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Per call: the API's form body and the floor's; "{n}" is a number unique per request."""
    add = {"service": setup["service"], "quantity": "1000"}
    api, floor = {"key": setup["api_key"]}, {"key": setup["floor_key"]}
    ten = {side: ",".join(setup[f"{side}_ids"].split(",")[:10]) for side in ("api", "floor")}
    return {
        "add": ({**api, **add, "action": "add", "link": "https://x.com/a{n}"},
                {**floor, **add, "charge": setup["charge"], "link": "https://x.com/f{n}"}),
        "status (100 ids)": ({**api, "action": "status", "orders": setup["api_ids"]},
                             {**floor, "orders": setup["floor_ids"]}),
        "status (10 ids)": ({**api, "action": "status", "orders": ten["api"]},
                            {**floor, "orders": ten["floor"]}),
    }


def _round_trips(path: str, body: dict[str, str], floor: bool) -> int:
    """Database round trips of one call, after two warm-up calls (the catalog cached, the
    key's last use noted): what every call but the first few costs."""
    from django.db import connection
    from django.test import Client, override_settings
    from psycopg import pq

    overrides = {"ROOT_URLCONF": "bench.floor_app.urls", "MIDDLEWARE": []} if floor else {}
    with override_settings(**overrides), tempfile.TemporaryFile() as trace:
        client = Client(HTTP_HOST="127.0.0.1", headers={"x-forwarded-proto": "https"})
        n = 0

        def call() -> None:
            nonlocal n
            n += 1
            data = {k: v.replace("{n}", f"rt{int(floor)}-{n}") for k, v in body.items()}
            reply = client.post(path, data)
            assert reply.status_code == 200 and b'"error"' not in reply.content, reply.content

        call()
        call()
        pgconn = connection.connection.pgconn  # the warm-up left the connection open
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        call()
        pgconn.untrace()
        trace.seek(0)
        sent = [line.split("\t") for line in trace.read().decode().splitlines()]
    return sum(1 for msg in sent if msg[0] == "F" and msg[2] in ("Sync", "Query"))


def _server_env(settings_module: str) -> dict[str, str]:
    from django.db import connection

    db = connection.settings_dict
    redis = os.environ.get("REDIS_URL", "")
    if not redis:
        raise SystemExit("bench/api.py needs REDIS_URL: production uses Redis as cache and broker")
    return {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "DEBUG": "false",
            "SECRET_KEY": "bench-" + "x" * 50,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": redis, "CELERY_BROKER_URL": "", "ALLOWED_HOSTS": "127.0.0.1",
            "API_RATE_LIMIT_PER_KEY": "0", "API_RATE_LIMIT_PER_IP": "0", "LOG_LEVEL": "INFO",
            "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UhISE="}


def _gunicorn(stack: ExitStack, app: str, settings_module: str, log: Path) -> str:
    """Start gunicorn on a free port in its own process group, stopped when `stack` closes."""
    from panel.devdb import free_port

    port = free_port()
    out = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--control-socket", str(log.with_suffix(".ctl"))],
        env=_server_env(settings_module), stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True)
    stack.callback(_stop, proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=5,
                            headers={"X-Forwarded-Proto": "https"}).ok:
                return url
        except requests.RequestException:  # not listening yet, or still loading the app
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn {app} did not start; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wrk(url: str, body: dict[str, str], seconds: int) -> subprocess.Popen[str]:
    """Start `wrk` POSTing `body` to `url` for `seconds`; read it with _rate."""
    form = urlencode(body).replace("%7Bn%7D", "{n}")
    return subprocess.Popen(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(HERE / "wrk_post.lua"),
         url], env={**os.environ, "WRK_BODY": form}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _rate(run: subprocess.Popen[str], url: str) -> float:
    """Requests per second of a finished wrk run; any non-200 or error reply fails the run."""
    out, err = run.communicate(timeout=120)
    bad = re.search(r"^BAD (\d+) ?(.*)$", out, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if run.returncode or not bad or not rate:
        raise RuntimeError(f"wrk said: {out}\n{err}")
    if int(bad.group(1)) or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"{url}: {bad.group(1)} bad replies, e.g. {bad.group(2)}\n{out}")
    return float(rate.group(1))


def _side_by_side(api: tuple[str, dict[str, str]], floor: tuple[str, dict[str, str]],
                  seconds: int) -> tuple[float, float]:
    """Both loads at once, for the same seconds: whatever else this shared machine does
    then slows both alike, and the two servers share the cores as equals, so the ratio of
    their rates is the ratio of what a call costs each."""
    runs = [(_wrk(url, body, seconds), url) for url, body in (api, floor)]
    api_rate, floor_rate = (_rate(run, url) for run, url in runs)
    return api_rate, floor_rate


def _rounds(api: tuple[str, dict[str, str]],
            floor: tuple[str, dict[str, str]]) -> list[tuple[float, float]]:
    _side_by_side(api, floor, 1)  # warm both: the catalog cache, connections, the key's use
    return [_side_by_side(api, floor, SECONDS) for _ in range(ROUNDS)]


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("bench/api.py needs wrk: apt-get install -y wrk")
    with bench_database():
        setup = _prepare()
        bodies = _bodies(setup)
        trips = {name: (_round_trips("/api/v2", api, floor=False),
                        _round_trips(f"/floor/{name.split()[0]}", floor, floor=True))
                 for name, (api, floor) in bodies.items()}
        from django.db import connection

        connection.close()  # gunicorn's workers need the database to themselves
        with ExitStack() as stack:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-api-")))
            api_url = _gunicorn(stack, "panel.wsgi:application", "panel.settings",
                                logs / "api.log")
            floor_url = _gunicorn(stack, "bench.floor_app.wsgi:application",
                                  "bench.floor_app.settings", logs / "floor.log")
            figures = {
                name: _rounds((f"{api_url}/api/v2", api),
                              (f"{floor_url}/floor/{name.split()[0]}", floor))
                for name, (api, floor) in bodies.items() if name != "status (10 ids)"}
        _purge_kicks()
    _report(figures, trips)


def _purge_kicks() -> None:
    """The benchmark's orders kicked dispatch into the broker with no worker to take them."""
    from celery import current_app

    import panel.celery  # noqa: F401  (configures current_app)

    current_app.control.purge()


def _report(figures: dict[str, list[tuple[float, float]]],
            trips: dict[str, tuple[int, int]]) -> None:
    print(f"API v2 against its floor: gunicorn 2 workers each, DEBUG off, Redis cache and "
          f"broker, rate limits off; wrk 2 threads {CONNECTIONS} connections, "
          f"{ROUNDS} rounds of {SECONDS} s, both at once")
    print(f"{'call':18} {'API req/s':>10} {'floor req/s':>12} {'ratio':>6}  "
          f"{'ratio per round':22} goal >= {GOAL}")
    for name, rounds in figures.items():
        ratios = [api / floor for api, floor in rounds]
        ratio = statistics.median(ratios)
        api = statistics.median(r[0] for r in rounds)
        floor = statistics.median(r[1] for r in rounds)
        print(f"{name:18} {api:10.0f} {floor:12.0f} {ratio:6.2f}  "
              f"{' '.join(f'{r:.2f}' for r in ratios):22} "
              f"{'met' if ratio >= GOAL else 'MISSED'}")
    print("database round trips per call (API / floor):")
    for name, (api_trips, floor_trips) in trips.items():
        print(f"  {name:18} {api_trips:3d} / {floor_trips}")
    few, hundred = trips["status (10 ids)"][0], trips["status (100 ids)"][0]
    print(f"status round trips: 10 ids {few}, 100 ids {hundred}: "
          f"{'constant' if few == hundred else 'NOT constant'}")


if __name__ == "__main__":
    main()
