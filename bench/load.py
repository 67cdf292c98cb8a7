"""Load: 200 concurrent API clients for 60 s mixing `add`, `status` and `services` against the
panel as separate processes (gunicorn 2 workers, a Celery worker, beat, the sandbox, a
private Redis); then the panel settles and the money invariants are checked
(bench/invariants.py, shared with bench/chaos.py).

The clients are 200 connections of `wrk` (2 threads, a compiled client; bench/wrk_mix.lua
picks a random customer and action per call), so the load generator takes little of the two
cores the panel runs on. A call waits in gunicorn's backlog while both workers are busy:
the latency printed is what a client sees, queueing included. wrk keeps no replies, so the
reply-by-reply check against the database is bench/chaos.py's; this one counts every reply
that is not HTTP 200 or is an API error as an error.

    make bench
    .venv/bin/python -m panel.devdb test -- .venv/bin/python -m bench.load [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.setup import bench_database

CONNECTIONS = 200
CUSTOMERS = 50  # so that no key meets the per-key rate limit (600 calls a minute)
MIX = "0.3,0.5,0.2"  # add, status, services
HERE = Path(__file__).resolve().parent


def _clients(keys: list[tuple[int, str]], service: Any) -> str:
    """Each customer's key with 20 orders of its own to ask the status of."""
    from orders.models import Order
    from orders.placing import place_order
    from panel.models import User

    entries = []
    for user_id, key in keys:
        user = User.objects.get(pk=user_id)
        ids = [place_order(user, service.pk, {"link": f"https://instagram.com/p/seed-{user_id}-{n}",
                                              "quantity": service.min_quantity}).pk
               for n in range(20)]
        entries.append(f"{key}:{','.join(map(str, ids))}")
    assert Order.objects.count() == 20 * len(keys)
    return ";".join(entries)


def run(seconds: int) -> int:
    from bench.cluster import Cluster
    from bench.invariants import check_all, settle

    if not shutil.which("wrk"):
        raise SystemExit("bench/load.py needs wrk: apt-get install -y wrk")
    with bench_database("_load"), tempfile.TemporaryDirectory(prefix="load-") as tmp:
        with Cluster(Path(tmp), sandbox_step=1.0) as cluster:
            setup = cluster.setup_catalog(customers=CUSTOMERS, deposit="1000000")
            service = setup["services"][0]
            clients = _clients(setup["keys"], service)
            from django.db import connection

            connection.close()
            cluster.start_worker()
            cluster.start_beat()
            add = urlencode({"service": service.pk, "quantity": service.min_quantity})
            started = time.monotonic()
            done = subprocess.run(
                ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s",
                 "-s", str(HERE / "wrk_mix.lua"), cluster.web_url],
                env={**os.environ, "WRK_CLIENTS": clients, "WRK_ADD": add, "WRK_MIX": MIX},
                capture_output=True, text=True, timeout=seconds + 120, check=False)
            loaded = time.monotonic() - started
            waited, left = settle(600)
            breaches, money = check_all(cluster.sandbox_adds())
            if left:
                breaches.append(f"not settled after {waited:.0f} s: {left}")
        connection.close()
    out = done.stdout
    errors = _errors(out)
    if errors:
        breaches.append(f"{errors} errors in the load")
    print(f"load: {CONNECTIONS} concurrent clients (wrk, 2 threads) for {loaded:.0f} s, "
          f"{CUSTOMERS} customers, mix add/status/services {MIX}")
    for line in out.splitlines():
        if re.match(r"\s*(Requests/sec|Latency|MIX|LATENCY_MS|BAD|Non-2xx|Socket errors|\d+ "
                    r"requests)", line):
            print(f"  {line.strip()}")
    print(f"settled {waited:.0f} s after the load")
    for name, value in money.items():
        print(f"{name}: {value}")
    for breach in breaches[:50]:
        print(f"BREACH {breach}")
    if not breaches:
        print("0 errors; every invariant held")
    return 1 if breaches else 0


def _errors(out: str) -> int:
    bad = re.search(r"^BAD (\d+)", out, re.M)
    if bad is None:
        return 1  # wrk did not finish: count it as an error
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (int(bad.group(1)) + (sum(map(int, socket.groups())) if socket else 0)
            + (int(non2xx.group(1)) if non2xx else 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args(argv)
    return run(args.seconds)


if __name__ == "__main__":
    sys.exit(main())

