"""A committed order is always answered as placed, whatever the broker does: with the broker
down, API v2 `add` answers each order's id, each is charged once, and once the broker is back
the sweep sends every one of them.

The broker is a private redis-server on a free port, down at first; a real Celery worker (in
this process) runs the sweep once it is up; the orders go to the sandbox provider over HTTP.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.test import Client

from orders.models import Order
from panel import ledger
from panel.celery import app as celery_app
from panel.models import ApiKey, LedgerEntry
from tests.conftest import make_service
from tests.test_end_to_end import _switch_broker

pytestmark = pytest.mark.django_db(transaction=True)
ORDERS = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def broker_down() -> Iterator[Callable[[], None]]:
    """This process's Celery app points at a broker that is not running; calling the fixture's
    value starts it (and it stops at the end of the test)."""
    port = _free_port()
    saved = (celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {}))
    _switch_broker(f"redis://127.0.0.1:{port}/0", settings.REDIS_BROKER_TRANSPORT_OPTIONS)
    servers: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        servers.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=10)
    _switch_broker(*saved)


def test_api_adds_while_the_broker_is_down_are_answered_charged_and_sent_later(
        broker_down, sandbox, catalog, alice):
    from celery.contrib.testing.worker import start_worker

    import orders.tasks  # noqa: F401  the worker below runs the sweep by its name

    service = make_service(catalog, "Default")
    _, raw_key = ApiKey.issue(alice, "reseller")
    client = Client()

    replies = [client.post("/api/v2", {
        "key": raw_key, "action": "add", "service": service.pk,
        "link": f"https://instagram.com/p/broker{n}", "quantity": service.min_quantity,
    }).json() for n in range(ORDERS)]

    assert all(set(reply) == {"order"} for reply in replies), replies
    ids = [reply["order"] for reply in replies]
    assert Order.objects.filter(pk__in=ids, status=Order.Status.QUEUED).count() == ORDERS
    assert LedgerEntry.objects.filter(order_id__in=ids, kind="charge").count() == ORDERS
    assert sandbox.adds() == []  # no kick got through

    broker_down()  # the broker is back; beat's next sweep arrives through it
    with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=10):
        celery_app.send_task("orders.tasks.dispatch_due")
        deadline = time.monotonic() + 30
        while Order.objects.filter(pk__in=ids, status=Order.Status.PENDING).count() < ORDERS:
            assert time.monotonic() < deadline, "the sweep did not send every order"
            time.sleep(0.2)

    bought = [a["params"]["link"] for a in sandbox.adds() if a["order"] is not None]
    assert sorted(bought) == sorted(f"https://instagram.com/p/broker{n}" for n in range(ORDERS))
    assert ledger.mismatched_balances() == []


def test_refill_cancel_and_resend_are_answered_while_the_broker_is_down(
        broker_down, sandbox, catalog, alice, staff_member, settings):
    """Their kicks are shortcuts too: the request that committed is answered as done."""
    from orders import dispatch, polling
    from orders.models import Refill

    settings.POLL_FIRST_DELAY = 0
    service = make_service(catalog, "Default", upstream={"refill": True, "cancel": True})
    _, raw_key = ApiKey.issue(alice, "reseller")
    client = Client()

    def add(n: int) -> int:
        return client.post("/api/v2", {"key": raw_key, "action": "add", "service": service.pk,
                                       "link": f"https://instagram.com/p/k{n}",
                                       "quantity": service.min_quantity}).json()["order"]

    completed, live, parked = add(1), add(2), add(3)
    dispatch.dispatch_one(completed)
    polling.poll_orders()  # the sandbox finishes orders at their first status query
    assert Order.objects.get(pk=completed).status == Order.Status.COMPLETED
    sandbox.set_fault("latency", action="status", delay=0)  # keep `live` live: never polled
    dispatch.dispatch_one(live)
    sandbox.set_fault("http500", action="add")
    dispatch.dispatch_one(parked)
    sandbox.clear_faults()

    refill = client.post("/api/v2", {"key": raw_key, "action": "refill",
                                     "order": completed}).json()
    cancel = client.post("/api/v2", {"key": raw_key, "action": "cancel",
                                     "orders": str(live)}).json()
    order = Order.objects.get(pk=parked)
    resent = order.resend(service.routes.get(), actor_id=staff_member.pk)

    assert Refill.objects.filter(pk=int(refill["refill"]), order_id=completed).exists()
    assert cancel == [{"order": live, "cancel": 1}]
    assert resent and Order.objects.get(pk=parked).status == Order.Status.QUEUED
