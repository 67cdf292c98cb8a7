"""The chaos run's short version (bench/chaos.py --short): gunicorn, a Celery worker, beat and
the sandbox as processes of their own, a private redis-server, a few hundred orders from
concurrent API clients while the upstream misbehaves on a schedule, the worker is killed with
`kill -9` mid-send, the broker restarts and two beats run at once; then every invariant
(bench/invariants.py) and every API reply against the database. The run is a process tree of
its own on its own database (test_<name>_chaos), so this test needs none of pytest-django's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BASE_DIR = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 900


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_short_chaos_run_holds_every_invariant():
    done = subprocess.run([sys.executable, "-m", "bench.chaos", "--short"], cwd=BASE_DIR,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True,
                          text=True, timeout=LIMIT_SECONDS, check=False)

    report = f"{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, report
    assert "every invariant held" in done.stdout, report
    assert "HTTP 5xx: 0" in done.stdout and "no reply: 0" in done.stdout, report
