"""The production web server (gunicorn, with the repository's gunicorn.conf.py as compose runs
it) logs API v2 calls without their query string: clients may send `key` in a GET query, and
an access log is read by far more people and tools than the database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from panel.models import ApiKey

BASE_DIR = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30
LIFETIME_SECONDS = 60  # gunicorn is killed by `timeout` after this, should this test die


def _database_url() -> str:
    """This test's database (committed: transaction=True), for the server process."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = quote(s["HOST"] or "127.0.0.1", safe="")
    return f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get_when_up(url: str) -> dict[str, str]:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_logs_api_calls_without_the_key_in_their_query_string(alice, tmp_path):
    _, secret = ApiKey.issue(alice)
    port, access_log = _free_port(), tmp_path / "access.log"
    server = subprocess.Popen(
        ["timeout", str(LIFETIME_SECONDS), sys.executable, "-m", "gunicorn",
         "--config", str(BASE_DIR / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--access-logfile", str(access_log), "panel.wsgi:application"],
        cwd=BASE_DIR, env={**os.environ, "DATABASE_URL": _database_url()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        reply = _get_when_up(f"http://127.0.0.1:{port}/api/v2?key={secret}&action=balance")
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already if it failed to start
            os.killpg(server.pid, signal.SIGTERM)  # gunicorn flushes its log as it stops
        server.wait(timeout=15)

    assert reply == {"balance": "100.00000", "currency": "USD"}  # the GET key authenticated
    logged = access_log.read_text()
    assert '"GET /api/v2 HTTP/1.1" 200' in logged
    assert secret not in logged and secret[:8] not in logged
    assert "action=balance" not in logged
