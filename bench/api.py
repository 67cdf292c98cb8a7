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
    redis = os.environ["REDIS_URL"]
    return {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "DEBUG": "false",
            "SECRET_KEY": "bench-" + "x" * 50,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": redis, "CELERY_BROKER_URL": "", "ALLOWED_HOSTS": "127.0.0.1",
            "API_RATE_LIMIT_PER_KEY": "0", "API_RATE_LIMIT_PER_IP": "0", "LOG_LEVEL": "INFO",
            "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UhISE="}


def _gunicorn(stack: ExitStack, app: str, settings_module: str, log: Path) -> tuple[str, int]:
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
                return url, proc.pid
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


def _cpu_seconds(group: int) -> float:
    """CPU time used so far by the processes of a process group (gunicorn and workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _result(run: subprocess.Popen[str], url: str) -> tuple[float, int]:
    """Requests per second and requests of a finished wrk run; any non-200 or error reply
    fails the run."""
    out, err = run.communicate(timeout=120)
    bad = re.search(r"^BAD (\d+) ?(.*)$", out, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    count = re.search(r"(\d+) requests in", out)
    if run.returncode or not bad or not rate or not count:
        raise RuntimeError(f"wrk said: {out}\n{err}")
    if int(bad.group(1)) or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"{url}: {bad.group(1)} bad replies, e.g. {bad.group(2)}\n{out}")
    return float(rate.group(1)), int(count.group(1))


Side = tuple[str, int, dict[str, str]]  # url, the server's process group, the body


def _side_by_side(api: Side, floor: Side, seconds: int) -> tuple[float, float, float, float]:
    """Both loads at once, for the same seconds: whatever else this shared machine does
    then slows both alike, and the two servers share the cores as equals, so the ratio of
    their rates is the ratio of what a call costs each. Also the servers' CPU ms per call."""
    cpu = [_cpu_seconds(group) for _, group, _ in (api, floor)]
    runs = [(_wrk(url, body, seconds), url) for url, _, body in (api, floor)]
    (api_rate, api_n), (floor_rate, floor_n) = (_result(run, url) for run, url in runs)
    api_cpu, floor_cpu = (_cpu_seconds(group) - before
                          for (_, group, _), before in zip((api, floor), cpu, strict=True))
    return api_rate, floor_rate, api_cpu * 1000 / api_n, floor_cpu * 1000 / floor_n


def _rounds(api: Side, floor: Side) -> list[tuple[float, float, float, float]]:
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
            # Production has Redis as cache and broker: a private one, so the kicks of the
            # orders placed here reach no worker and need no cleaning up.
            from bench.cluster import private_redis

            os.environ["REDIS_URL"] = private_redis(stack, logs)
            api_url, api_group = _gunicorn(stack, "panel.wsgi:application", "panel.settings",
                                           logs / "api.log")
            floor_url, floor_group = _gunicorn(stack, "bench.floor_app.wsgi:application",
                                               "bench.floor_app.settings", logs / "floor.log")
            figures = {
                name: _rounds((f"{api_url}/api/v2", api_group, api),
                              (f"{floor_url}/floor/{name.split()[0]}", floor_group, floor))
                for name, (api, floor) in bodies.items() if name != "status (10 ids)"}
    _report(figures, trips)


def _report(figures: dict[str, list[tuple[float, float, float, float]]],
            trips: dict[str, tuple[int, int]]) -> None:
    print(f"API v2 against its floor: gunicorn 2 workers each, DEBUG off, Redis cache and "
          f"broker, rate limits off; wrk 2 threads {CONNECTIONS} connections per server, "
          f"{ROUNDS} rounds of {SECONDS} s, both servers loaded at once")
    print(f"{'call':18} {'API req/s':>10} {'floor req/s':>12} {'ratio':>6}  "
          f"{'ratio per round':30} goal >= {GOAL}")
    for name, rounds in figures.items():
        ratios = [r[0] / r[1] for r in rounds]
        ratio = statistics.median(ratios)
        api = statistics.median(r[0] for r in rounds)
        floor = statistics.median(r[1] for r in rounds)
        print(f"{name:18} {api:10.0f} {floor:12.0f} {ratio:6.2f}  "
              f"{' '.join(f'{r:.2f}' for r in ratios):30} "
              f"{'met' if ratio >= GOAL else 'MISSED'}")
    print("server CPU per call, ms (median of the rounds; database and client not included):")
    for name, rounds in figures.items():
        api_ms = statistics.median(r[2] for r in rounds)
        floor_ms = statistics.median(r[3] for r in rounds)
        print(f"  {name:18} API {api_ms:.2f}  floor {floor_ms:.2f}")
    print("database round trips per call, API / floor (both also pay Django's per-request "
          "connection health check under gunicorn):")
    for name, (api_trips, floor_trips) in trips.items():
        print(f"  {name:18} {api_trips:3d} / {floor_trips}")
    few, hundred = trips["status (10 ids)"][0], trips["status (100 ids)"][0]
    print(f"status round trips: 10 ids {few}, 100 ids {hundred}: "
          f"{'constant' if few == hundred else 'NOT constant'}")


if __name__ == "__main__":
    main()
