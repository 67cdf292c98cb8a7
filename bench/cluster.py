"""The panel as separate processes on this machine, for bench/chaos.py and bench/load.py.

gunicorn, a Celery worker, beat and the sandbox provider each run in a process group of
their own, on 127.0.0.1 and free ports, against a private redis-server (broker and cache) and
the benchmark's own database. Every process is started under `timeout`, so it dies by itself
should this one be killed; a normal exit, Ctrl-C or SIGTERM stops them all (ExitStack,
atexit, signal handlers).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LIFETIME_SECONDS = 1800  # a process left behind by a killed benchmark ends after this


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a worker's pool children too)."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = 15) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(timeout=10)
        with suppress(ProcessLookupError, PermissionError):  # children left in the group
            os.killpg(self.popen.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    from panel.devdb import free_port as port

    return port()


class Cluster:
    """Start with `with Cluster(workdir, ...) as cluster:`; everything stops on leaving."""

    def __init__(self, workdir: Path, *, web_workers: int = 2, worker_concurrency: int = 2,
                 sandbox_step: float = 1.0, extra_env: dict[str, str] | None = None) -> None:
        from django.db import connection

        self.workdir = workdir
        self.web_workers, self.worker_concurrency = web_workers, worker_concurrency
        self.sandbox_step = sandbox_step
        self.redis_port, self.web_port, self.sandbox_port = free_port(), free_port(), free_port()
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "panel.settings", "DEBUG": "false",
            "SECRET_KEY": "bench-cluster-" + "x" * 50,
            "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UhISE=",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                            f"{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0", "CELERY_BROKER_URL": "",
            "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false",
            "PROVIDER_ALLOW_PRIVATE_ADDRESSES": "true",
            # Everything at the pace of a benchmark, not of a day in production.
            "SWEEP_INTERVAL": "1", "POLL_FIRST_DELAY": "1", "POLL_MAX_DELAY": "3",
            "PROVIDER_CONNECT_TIMEOUT": "2", "PROVIDER_READ_TIMEOUT": "3",
            "WATCHDOG_SUBMITTING_MINUTES": "1", "DISPATCH_BATCH_SECONDS": "10",
            "DISPATCH_RETRY_SECONDS": "2", "DISPATCH_MAX_BACKOFF_SECONDS": "10",
            "CATALOG_SYNC_INTERVAL": "3600", "BALANCE_CHECK_INTERVAL": "3600",
            "API_RATE_LIMIT_PER_IP": "0",  # every client here shares 127.0.0.1
            "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.processes: dict[str, Process] = {}
        self._stack = ExitStack()
        self._restarts = 0

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        self._stack.callback(self.stop_all)
        atexit.register(self.stop_all)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _exit_on_signal)
        try:
            self.start_redis()
            self.start_sandbox()
            self.start_web()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def stop_all(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()

    def _start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Process:
        if shutil.which("timeout"):
            command = ["timeout", "--kill-after=5", str(LIFETIME_SECONDS), *command]
        self._restarts += 1
        log = self.workdir / f"{name}.{self._restarts}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(command, cwd=BASE_DIR, env=env or self.env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def _wait(self, what: str, ready: Any, process: Process, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if ready():
                return
            if not process.alive():
                break
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not start:\n{process.tail()}")

    # --- the parts -----------------------------------------------------------------------

    def start_redis(self) -> None:
        process = self._start("redis", [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--maxmemory", "256mb"])
        self._wait("redis-server", lambda: _redis_ping(self.redis_port), process)

    def restart_redis(self, down_seconds: float) -> None:
        """A broker restart: everything queued in it is lost, as after a crash."""
        self.processes["redis"].stop(grace=5)
        time.sleep(down_seconds)
        self.start_redis()

    def start_sandbox(self) -> None:
        process = self._start("sandbox", [
            sys.executable, "-m", "providers.sandbox", "--port", str(self.sandbox_port),
            "--step-seconds", str(self.sandbox_step), "--db", str(self.workdir / "sandbox.db"),
            "--partial-every", "8"])
        self._wait("the sandbox", lambda: self.sandbox_health() is not None, process)

    def start_web(self) -> None:
        process = self._start("web", [
            str(VENV_BIN / "gunicorn"), "panel.wsgi:application", "-c", "gunicorn.conf.py",
            "--bind", f"127.0.0.1:{self.web_port}", "--workers", str(self.web_workers),
            "--control-socket", str(self.workdir / "gunicorn.ctl"),
            "--access-logfile", str(self.workdir / "access.log")])
        self._wait("gunicorn", lambda: _get_ok(f"{self.web_url}/healthz"), process)

    def start_worker(self) -> None:
        process = self._start("worker", [
            str(VENV_BIN / "celery"), "-A", "panel", "worker", "--loglevel", "INFO",
            "--concurrency", str(self.worker_concurrency), "--without-mingle",
            "--without-gossip", "--max-memory-per-child", "300000",
            "-n", f"bench-{os.getpid()}-{self._restarts}@%h"])
        self._wait("the worker", lambda: "ready." in process.log.read_text(errors="replace"),
                   process, limit=90)

    def kill_worker(self) -> None:
        """kill -9 of the worker and its pool: no warm shutdown, no message acknowledged."""
        self.processes["worker"].kill(signal.SIGKILL)
        self.processes["worker"].popen.wait(timeout=10)

    def start_beat(self, name: str = "beat") -> None:
        self._start(name, [
            str(VENV_BIN / "celery"), "-A", "panel", "beat", "--loglevel", "INFO",
            "--max-interval", "1", "--schedule", str(self.workdir / f"{name}-schedule")])

    def stop(self, name: str) -> None:
        self.processes.pop(name).stop()

    def revive(self) -> list[str]:
        """Restart whatever exited on its own, as compose's `restart: unless-stopped` would;
        what was restarted, with its exit code and its last words."""
        starts: dict[str, Callable[[], None]] = {
            "redis": self.start_redis, "sandbox": self.start_sandbox,
                  "web": self.start_web, "worker": self.start_worker,
                  "beat": self.start_beat}
        revived = []
        for name, process in list(self.processes.items()):
            if not process.alive() and name in starts:
                last = [line for line in process.tail(80).splitlines()
                        if "CRITICAL" in line or "Error" in line][-1:]
                revived.append(f"{name} exited by itself (code {process.popen.returncode}"
                               f"{': ' + last[0][:160] if last else ''}); restarted")
                starts[name]()
        return revived

    # --- addresses and the sandbox's control endpoint ------------------------------------

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def sandbox_health(self) -> dict[str, Any] | None:
        try:
            return dict(requests.get(f"{self.sandbox_url}/control/health", timeout=2).json())
        except (requests.RequestException, ValueError):
            return None

    def set_fault(self, fault: str, **fields: Any) -> None:
        self._control("POST", "fault", {"fault": fault, **fields})

    def clear_faults(self) -> None:
        self._control("DELETE", "fault", {})

    def _control(self, method: str, name: str, body: dict[str, Any]) -> None:
        """A control call, retried while the sandbox refuses connections (its `refuse`
        fault closes the control endpoint too)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.request(method, f"{self.sandbox_url}/control/{name}",
                                 data=json.dumps(body), timeout=5).raise_for_status()
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def sandbox_adds(self) -> list[dict[str, Any]]:
        reply = requests.get(f"{self.sandbox_url}/control/adds", timeout=60)
        reply.raise_for_status()
        return list(reply.json())

    def setup_catalog(self, customers: int, deposit: str) -> dict[str, Any]:
        """The sandbox as provider, three services of different types, customers with keys."""
        from decimal import Decimal

        from panel import ledger
        from panel.models import ApiKey, User
        from providers.models import Provider
        from providers.sync import sync_catalog
        from tests.conftest import make_service

        health = self.sandbox_health()
        assert health is not None
        provider = Provider(name="sandbox", api_url=health["url"])
        provider.api_key = health["key"]
        provider.save()
        assert sync_catalog(provider).ok
        services = [make_service(provider, kind, one_order_per_link=False)
                    for kind in ("Default", "Package", "Custom Comments")]
        keys = []
        for n in range(customers):
            user = User.objects.create_user(f"client{n}", f"client{n}@example.com", "x" * 12)
            ledger.deposit(user.pk, Decimal(deposit), memo="bench deposit")
            keys.append((user.pk, ApiKey.issue(user)[1]))
        return {"provider": provider, "services": services, "keys": keys}


def private_redis(stack: ExitStack, workdir: Path) -> str:
    """A redis-server of our own on a free port, stopped when `stack` closes; its URL."""
    port = free_port()
    log = workdir / "redis.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    process = Process("redis", popen, log)
    stack.callback(process.stop)
    deadline = time.monotonic() + 30
    while not _redis_ping(port):
        if time.monotonic() > deadline or not process.alive():
            raise RuntimeError(f"redis-server did not start:\n{process.tail()}")
        time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0"


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: every process is stopped


def _redis_ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (our own server)
            return bool(reply.status == 200)
    except OSError:
        return False
