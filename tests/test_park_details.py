"""A parked order says exactly what happened — the phase its send broke in, the HTTP status,
the start of the reply with our key masked — and parked orders group by provider and time
window for a staff desk. Against the sandbox's faults over HTTP."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from orders import watchdog
from orders.dispatch import dispatch_one
from orders.models import Order, ParkPhase
from providers.client import REPLY_START_CHARS, mask_key
from providers.models import Provider
from providers.sandbox import SandboxServer
from providers.sync import sync_catalog
from tests.conftest import make_provider, make_service
from tests.test_dispatch_faults import place
from tests.test_stale_claims import in_thread

pytestmark = pytest.mark.django_db

READ_TIMEOUT = 0.5


@pytest.fixture(autouse=True)
def short_timeouts(settings: Any) -> None:
    settings.PROVIDER_READ_TIMEOUT = READ_TIMEOUT
    settings.PROVIDER_CONNECT_TIMEOUT = 1.0


# fault → (phase, HTTP status, what the kept reply starts with)
EXPECTED = {
    "timeout_before": (ParkPhase.READ, None, ""),
    "timeout_after": (ParkPhase.READ, None, ""),
    "trickle": (ParkPhase.READ, None, ""),
    "http500": (ParkPhase.HTTP, 500, "500 Internal Server Error"),
    "html": (ParkPhase.PARSE, 200, "<!DOCTYPE html>"),
    "truncated": (ParkPhase.PARSE, 200, '{"order'),
    "garbage": (ParkPhase.PARSE, 200, "\x1f"),
}


@pytest.mark.parametrize("fault", list(EXPECTED))
def test_a_parked_order_records_the_phase_status_and_start_of_the_reply(
        fault, sandbox, catalog, alice):
    service = make_service(catalog, "Default")
    order = place(alice, service)
    sandbox.set_fault(fault, action="add", delay=2.0 if fault != "trickle" else 0.3)

    dispatch_one(order.pk)

    order.refresh_from_db()
    phase, http_status, starts = EXPECTED[fault]
    assert order.status == Order.Status.NEEDS_ATTENTION
    assert (order.park_phase, order.park_http_status) == (phase, http_status)
    assert order.park_reply.startswith(starts)
    assert order.sent_to_id == catalog.pk
    assert order.parked_at is not None and order.parked_at <= timezone.now()


def test_the_kept_reply_is_bounded_and_never_carries_our_key(sandbox, catalog, alice):
    service = make_service(catalog, "Default")
    order = place(alice, service)
    dump = f"Traceback: api_key={sandbox.key} in handler\n" + "x" * 5000
    sandbox.set_fault("http500", action="add", message=dump)

    dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.park_phase == ParkPhase.HTTP and order.park_http_status == 500
    assert len(order.park_reply) == REPLY_START_CHARS
    assert sandbox.key not in order.park_reply and sandbox.key not in order.error
    assert mask_key(sandbox.key) in order.park_reply


@pytest.mark.django_db(transaction=True)  # the send runs in a thread, on its own connection
def test_a_send_the_watchdog_finds_stuck_is_parked_as_worker_lost_at_its_provider(
        sandbox, catalog, alice, settings):
    service = make_service(catalog, "Default")
    order = place(alice, service)
    sandbox.set_fault("latency", action="add", delay=2.0)
    settings.PROVIDER_READ_TIMEOUT = 5
    sending = in_thread(dispatch_one, order.pk)
    deadline = time.monotonic() + 5
    while not Order.objects.filter(pk=order.pk, sent_to__isnull=False).exists():
        assert time.monotonic() < deadline, "the send never went out"
        time.sleep(0.02)

    settings.WATCHDOG_SUBMITTING_SECONDS = 0  # as if the worker had died mid-send
    assert watchdog.run_watchdog()["parked"] == 1
    sending.join(timeout=10)

    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION
    assert order.park_phase == ParkPhase.WORKER_LOST and order.sent_to_id == catalog.pk


@pytest.fixture
def backup_sandbox():
    server = SandboxServer(port=0, step_seconds=0, partial_every=0, rejected_every=0).start()
    yield server
    server.stop()


def test_parked_orders_group_by_provider_phase_and_time_window(
        sandbox, catalog, backup_sandbox, alice, django_assert_num_queries):
    backup = make_provider(backup_sandbox, name="Backup")
    assert sync_catalog(backup).ok
    at_sandbox = make_service(catalog, "Default", one_order_per_link=False)
    at_backup = make_service(backup, "Default", one_order_per_link=False)
    sandbox.set_fault("http500", action="add")
    backup_sandbox.set_fault("html", action="add")
    parked: dict[str, list[int]] = {"sandbox": [], "backup": []}
    for name, service in (("sandbox", at_sandbox), ("backup", at_backup)):
        for _ in range(3):
            order = place(alice, service)
            dispatch_one(order.pk)
            parked[name].append(order.pk)
    # One of the sandbox's orders was parked an hour earlier: another window.
    early = parked["sandbox"][0]
    Order.objects.filter(pk=early).update(parked_at=timezone.now() - timedelta(hours=1))
    Order.objects.filter(pk=parked["backup"][0]).update(status=Order.Status.FAILED)  # settled

    with django_assert_num_queries(1):
        groups = Order.objects.parked().grouped_by_provider_window(10)

    summary = [(g["provider_name"], g["park_phase"], g["park_http_status"], g["order_ids"])
               for g in groups]
    assert summary == [
        ("Backup", ParkPhase.PARSE, 200, parked["backup"][1:]),
        ("Sandbox", ParkPhase.HTTP, 500, parked["sandbox"][1:]),
        ("Sandbox", ParkPhase.HTTP, 500, [early]),
    ]
    for group in groups:
        assert group["window_end"] - group["window_start"] == timedelta(minutes=10)
        assert group["count"] == len(group["order_ids"])
        assert group["provider_id"] == Provider.objects.get(name=group["provider_name"]).pk
    newest = groups[0]
    assert newest["window_start"] <= timezone.now() < newest["window_end"]


def test_the_admin_shows_what_happened_to_a_parked_order(sandbox, catalog, alice, admin_client):
    service = make_service(catalog, "Default")
    order = place(alice, service)
    sandbox.set_fault("http500", action="add", message="upstream exploded: 0xdeadbeef")
    dispatch_one(order.pk)

    page = admin_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    listing = admin_client.get("/admin/orders/order/?park_phase=http").content.decode()

    assert "Park phase" in page and "upstream exploded: 0xdeadbeef" in page and "500" in page
    assert f">{order.pk}<" in listing


def test_the_desk_queue_groups_parked_orders_by_where_their_sends_broke(
        sandbox, catalog, alice, client):
    from django.urls import reverse

    from tests.conftest import make_staff

    service = make_service(catalog, "Default", one_order_per_link=False)
    broken = {}
    for fault in ("http500", "garbage"):
        sandbox.set_fault(fault, action="add", message="upstream exploded" if fault == "http500"
                          else None)
        order = place(alice, service)
        dispatch_one(order.pk)
        broken[fault] = order.pk
        sandbox.clear_faults()
    client.force_login(make_staff("sam"))

    page = client.get(reverse("desk:attention"))

    groups = {g.phase: [o.pk for o in g.orders] for g in page.context["groups"]}
    assert groups == {ParkPhase.HTTP: [broken["http500"]], ParkPhase.PARSE: [broken["garbage"]]}
    assert {g.provider for g in page.context["groups"]} == {"Sandbox"}
    html = page.content.decode()
    assert "· HTTP status</h2>" in html and "· Parse</h2>" in html
    assert "HTTP 500" in html and "upstream exploded" in html  # what the reply began with
