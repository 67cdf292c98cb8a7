"""End to end: orders placed here are carried to the end by a real Celery worker and beat.

The worker and beat run as subprocesses against this test's (committed) database and a broker
shared with this process: CI's Redis when REDIS_URL is set, else a private filesystem queue in
a temporary folder. The sandbox provider runs in this process. Nothing here calls a workflow
function after placing: the on-commit kicks and beat's sweeps (every second) do the rest.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone

from orders.models import Order, Refill, Service
from orders.placing import place_order
from orders.refills import request_refill
from panel import ledger
from panel.celery import app as celery_app
from panel.models import LedgerEntry, User
from panel.money import quantize_refund
from providers.models import Provider
from providers.sandbox import SandboxServer
from providers.sandbox.catalog import SERVICE_TYPES
from providers.sync import sync_catalog
from tests.conftest import make_customer, make_provider, make_service, valid_add_params

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parent.parent
# What one test may take from the start of its worker to its last check.
BUDGET_SECONDS = 60
# The subprocesses end by themselves after this, should this process die without stopping them.
LIFETIME_SECONDS = 180
T = TypeVar("T")


# --- the broker both sides share -------------------------------------------------------------

def _switch_broker(url: str, options: dict[str, Any]) -> None:
    """Point this process's Celery app at another broker, dropping its cached pools."""
    celery_app.conf.update(broker_url=url, broker_transport_options=options)
    celery_app.__dict__.pop("_pool", None)
    celery_app.amqp.__dict__.pop("_producer_pool", None)


@pytest.fixture
def broker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for the subprocesses so they use this process's broker."""
    if os.environ.get("REDIS_URL"):
        yield {}  # both sides read REDIS_URL
        return
    queue = tmp_path / "queue"
    (queue / "control").mkdir(parents=True)
    url = f"filesystem://{queue}"  # panel/settings.py takes the folder from the path
    saved = (celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {}))
    _switch_broker(url, {"data_folder_in": str(queue), "data_folder_out": str(queue),
                         "processed_folder": str(queue), "control_folder": str(queue / "control"),
                         "store_processed": False, "polling_interval": 0.1})
    yield {"REDIS_URL": "", "CELERY_BROKER_URL": url}
    _switch_broker(*saved)


# --- the worker and beat ---------------------------------------------------------------------

def _database_url() -> str:
    """The database this test runs on (test_…, committed: transaction=True), as a URL."""
    s = connection.settings_dict
    user = quote(s["USER"] or "", safe="")
    auth = f"{user}:{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else user
    host = quote(s["HOST"] or "127.0.0.1", safe="")
    return f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 150) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        # `timeout` passes SIGTERM on: a warm shutdown of celery.
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


@dataclass
class Celery:
    """The running worker and beat, with a deadline for the whole test."""

    processes: list[Process]
    deadline: float
    describe: list[Callable[[], str]] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} (exit {p.popen.poll()}) log, last lines -----\n"
                         f"{p.tail()}" for p in self.processes)

    def fail(self, message: str) -> None:
        state = "\n".join(d() for d in self.describe)
        pytest.fail(f"{message}\n{state}\n{self.logs()}", pytrace=False)

    def check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                self.fail(f"celery {process.name} exited with {process.popen.returncode}")

    def wait_for(self, what: str, condition: Callable[[], T | None],
                 limit: float | None = None) -> T:
        """Poll the database until `condition()` is truthy, within the test's budget."""
        deadline = self.deadline if limit is None else min(self.deadline,
                                                           time.monotonic() + limit)
        while True:
            value = condition()
            if value:
                return value
            self.check_alive()
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.2)


def _start(name: str, args: list[str], env: dict[str, str], log: Path) -> Process:
    command = [str(Path(sys.executable).with_name("celery")), "-A", "panel", *args]
    if shutil.which("timeout"):
        command = ["timeout", "--kill-after=5", str(LIFETIME_SECONDS), *command]
    with log.open("wb") as out:
        # Its own process group, so that stopping it can reach whatever it started.
        popen = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    return Process(name, popen, log)


@pytest.fixture
def celery(transactional_db: Any, broker_env: dict[str, str], tmp_path: Path) -> Iterator[Celery]:
    """A worker (solo pool) and beat sweeping every second, stopped whatever happens."""
    env = {
        **os.environ, **broker_env,
        "DJANGO_SETTINGS_MODULE": "panel.settings",
        "DATABASE_URL": _database_url(),
        "SWEEP_INTERVAL": "1", "POLL_FIRST_DELAY": "0", "POLL_MAX_DELAY": "1",
        "PROVIDER_ALLOW_PRIVATE_ADDRESSES": "true",
        "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
    }
    started = time.monotonic()
    processes: list[Process] = []
    running = Celery(processes, deadline=started + BUDGET_SECONDS)
    try:
        processes.append(_start("worker", [
            "worker", "--pool", "solo", "--loglevel", "INFO", "--without-mingle",
            "--without-gossip", "-n", f"e2e-{os.getpid()}@%h"], env, tmp_path / "worker.log"))
        processes.append(_start("beat", [
            "beat", "--loglevel", "INFO", "--max-interval", "1",
            "--schedule", str(tmp_path / "beat-schedule")], env, tmp_path / "beat.log"))
        running.wait_for("the worker to be ready",
                         lambda: "ready." in processes[0].log.read_text(errors="replace"),
                         limit=30)
        yield running
    finally:
        for process in processes:
            process.stop()
        # Shown by pytest only when the test failed.
        print(f"celery ran {time.monotonic() - started:.1f} s\n{running.logs()}")


# --- the upstream and the customer -----------------------------------------------------------

@pytest.fixture
def slow_sandbox() -> Iterator[SandboxServer]:
    """An upstream where an order stays Pending for an hour unless forced."""
    server = SandboxServer(port=0, step_seconds=3600, partial_every=0, rejected_every=0).start()
    yield server
    server.stop()


@pytest.fixture
def carol(transactional_db: Any) -> User:
    return make_customer("carol", balance="1000")


def _params(service: Service, **overrides: Any) -> dict[str, Any]:
    params = valid_add_params({"service": service.pk, "type": service.type,
                               "min": service.min_quantity})
    return {**params, **overrides}


def _status_table(orders: list[Order]) -> Callable[[], str]:
    def describe() -> str:
        rows = Order.objects.filter(pk__in=[o.pk for o in orders]).select_related("service")
        return "orders now:\n" + "\n".join(
            f"  #{o.pk} {o.service.type:24} {o.status:16} upstream={o.upstream_id} "
            f"error={o.error[:120]!r}" for o in rows.order_by("pk"))
    return describe


def _refunds(order: Order) -> list[Decimal]:
    return list(LedgerEntry.objects.filter(order_id=order.pk, kind=LedgerEntry.Kind.REFUND)
                .values_list("amount", flat=True))


def _balance(user: User) -> Decimal:
    user.refresh_from_db()
    return user.balance


def _purchases(server: SandboxServer, link: str) -> list[dict[str, Any]]:
    """The `add`s that bought something for this link (a subscription's is its username)."""
    return [a for a in server.adds()
            if (a["params"].get("link") or a["params"].get("username")) == link and a["order"]]


# --- the tests -------------------------------------------------------------------------------

def test_every_service_type_completes_a_partial_is_refunded_once_and_a_refill_completes(
        celery: Celery, sandbox: SandboxServer, catalog: Provider,
        slow_sandbox: SandboxServer, carol: User):
    services = [make_service(catalog, kind) for kind in SERVICE_TYPES]
    slow = make_provider(slow_sandbox, name="Slow")
    assert sync_catalog(slow).ok
    to_be_partial = make_service(slow, "Default", name="Followers via the slow upstream")

    orders = [place_order(carol, s.pk, _params(s)) for s in services]
    partial = place_order(carol, to_be_partial.pk, _params(to_be_partial, quantity=1000))
    celery.describe.append(_status_table([*orders, partial]))
    charged = sum((o.charge for o in [*orders, partial]), Decimal(0))
    assert _balance(carol) == Decimal(1000) - charged

    # Every type, sent by the on-commit kick or the sweep and polled to Completed.
    ids = [o.pk for o in orders]
    celery.wait_for("all 14 service types to complete", lambda: not Order.objects.filter(
        pk__in=ids).exclude(status=Order.Status.COMPLETED).exists())
    for order in Order.objects.filter(pk__in=ids):
        assert order.upstream_id is not None and order.provider_id == catalog.pk
        assert order.finished_at is not None and order.refunded == 0
        assert [a["order"] for a in _purchases(sandbox, order.link or order.params["username"])
                ] == [order.upstream_id], f"bought once: {order.service.type}"

    # The slow upstream took its order; it ends Partial there and is refunded once here.
    partial = celery.wait_for("the order to reach the slow upstream", lambda: Order.objects.filter(
        pk=partial.pk, upstream_id__isnull=False).first())
    assert partial.status in Order.POLLED and partial.upstream_id is not None
    slow_sandbox.force_order(partial.upstream_id, status="Partial", remains=400)
    celery.wait_for("the Partial to be seen", lambda: Order.objects.filter(
        pk=partial.pk, status=Order.Status.PARTIAL).exists())
    expected = quantize_refund(partial.charge * 400 / 1000)
    time.sleep(2.5)  # two more sweeps: nothing may pay it back again
    assert _refunds(partial) == [expected]

    # A refill of the completed refillable order goes up and is polled to its end.
    refillable = next(o for o in Order.objects.filter(pk__in=ids).select_related("service")
                      if o.service.refill)
    refill = request_refill(carol, refillable.pk)
    celery.describe.append(lambda: "refills now: " + repr(list(
        Refill.objects.values_list("pk", "status", "upstream_id", "error"))))
    refill = celery.wait_for("the refill to finish", lambda: Refill.objects.filter(
        pk=refill.pk, status__in=[Refill.Status.COMPLETED, Refill.Status.REJECTED]).first())
    assert refill.upstream_id is not None
    assert refill.status == Refill.Status.COMPLETED  # the sandbox rejects none here

    assert _balance(carol) == Decimal(1000) - charged + expected
    assert ledger.mismatched_balances() == []


def test_a_drip_feed_the_upstream_cannot_do_is_run_by_the_panel(
        celery: Celery, sandbox: SandboxServer, catalog: Provider, carol: User):
    # Upstream service 102 does not drip-feed; we sell drip-feed on it all the same.
    service = make_service(catalog, "Default", dripfeed=True,
                           upstream={"upstream_id": 102, "dripfeed": False})
    parent = place_order(carol, service.pk, _params(service, quantity=60, runs=3, interval=1))
    assert parent.charged_units == 180
    celery.describe.append(lambda: _status_table(
        [parent, *Order.objects.filter(parent=parent)])())

    runs = celery.wait_for("the first run to complete", lambda: list(
        Order.objects.filter(parent=parent, status=Order.Status.COMPLETED)))
    assert [r.run_number for r in runs] == [1]
    # Runs are due `interval` minutes apart: move the clock on instead of waiting.
    Order.objects.filter(parent=parent, status=Order.Status.QUEUED).update(
        next_check_at=timezone.now())
    parent = celery.wait_for("the drip-feed to complete", lambda: Order.objects.filter(
        pk=parent.pk, status=Order.Status.COMPLETED).first())

    runs = list(Order.objects.filter(parent=parent).order_by("run_number"))
    assert [(r.run_number, r.status, r.quantity) for r in runs] == [
        (n, Order.Status.COMPLETED, 60) for n in (1, 2, 3)]
    bought = _purchases(sandbox, parent.link)
    assert sorted(a["order"] for a in bought) == sorted(r.upstream_id or 0 for r in runs)
    assert all(r.upstream_id for r in runs)
    for add in bought:  # each run is a plain order upstream
        assert add["params"]["quantity"] == "60"
        assert "runs" not in add["params"] and "interval" not in add["params"]
    assert parent.upstream_id is None and parent.remains == 0
    assert _refunds(parent) == []
    assert Order.objects.for_customer(carol.pk).count() == 1
    assert ledger.mismatched_balances() == []
