"""A rate limit or our own balance running out at an upstream is a short outage, not a failure:
the order stays queued with a backoff, the low balance is alerted, and nothing that may have
been bought is sent again. Against the sandbox provider over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from orders import dispatch
from orders.models import Order, OrderEvent
from orders.placing import place_order
from panel import ledger
from panel.models import User
from providers.models import Provider
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


def place(user, service) -> Order:
    return place_order(user, service.pk, {"link": "https://instagram.com/p/temporary",
                                          "quantity": service.min_quantity})


def purchases(sandbox, order: Order) -> list[int]:
    return [a["order"] for a in sandbox.adds() if a["params"].get("link") == order.link
            and a["order"] is not None]


def time_passes(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())


def test_our_balance_too_low_upstream_puts_the_order_off_and_alerts(sandbox, catalog, alice):
    User.objects.create_superuser("boss", "boss@example.com", "pw-123456789")
    service = make_service(catalog, "Default")
    order = place(alice, service)
    sandbox.store.set_balance(sandbox.key, Decimal(0))  # we cannot pay the upstream now

    dispatch.dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED  # not failed, not refunded
    assert order.refunded == 0 and order.deferrals == 1
    assert order.next_check_at > timezone.now() + timedelta(seconds=30)
    assert OrderEvent.objects.filter(order=order, kind="deferred").exists()
    assert Provider.objects.get(pk=catalog.pk).low_balance_alerted
    assert [m.to for m in mail.outbox] == [["boss@example.com"]]
    assert purchases(sandbox, order) == []

    sandbox.store.set_balance(sandbox.key, Decimal(1000))  # topped up
    time_passes(order)
    assert dispatch.dispatch_due() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and len(purchases(sandbox, order)) == 1
    assert ledger.mismatched_balances() == []


def test_a_rate_limited_add_is_retried_later_with_a_growing_backoff(sandbox, catalog, alice):
    service = make_service(catalog, "Default")
    order = place(alice, service)
    sandbox.set_fault("http429", action="add", times=2)

    dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    first_wait = order.next_check_at - timezone.now()
    assert order.status == Order.Status.QUEUED and "429" in order.error

    time_passes(order)
    dispatch.dispatch_due()
    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED and order.deferrals == 2
    assert order.next_check_at - timezone.now() > first_wait  # backs off

    time_passes(order)
    dispatch.dispatch_due()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and len(purchases(sandbox, order)) == 1
    assert order.refunded == 0


def test_a_temporary_refusal_tries_the_next_route_first(sandbox, catalog, alice):
    """Another provider that can take it now is better for the customer than waiting."""
    from providers.sandbox import SandboxServer
    from providers.sync import sync_catalog
    from tests.conftest import make_provider
    from tests.test_dispatch_faults import add_route

    backup_sandbox = SandboxServer(port=0, step_seconds=0, partial_every=0,
                                   rejected_every=0).start()
    try:
        backup = make_provider(backup_sandbox, name="Backup")
        assert sync_catalog(backup).ok
        service = make_service(catalog, "Default")
        add_route(service, backup)
        order = place(alice, service)
        sandbox.set_fault("http429", action="add")

        dispatch.dispatch_one(order.pk)

        order.refresh_from_db()
        assert order.status == Order.Status.PENDING and order.provider_id == backup.pk
        assert purchases(sandbox, order) == [] and len(purchases(backup_sandbox, order)) == 1
    finally:
        backup_sandbox.stop()


def test_an_order_for_a_paused_provider_waits_for_the_admin_and_is_sent_after(
        sandbox, catalog, alice):
    """Buying paused (the upstream reported another currency) is for an admin to lift: the
    order waits queued, money held, instead of failing."""
    service = make_service(catalog, "Default")
    order = place(alice, service)
    catalog.pause_buying("the balance is in EUR, not USD")

    dispatch.dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED and order.refunded == 0
    assert "buying paused" in order.error and purchases(sandbox, order) == []

    catalog.resume_buying()
    time_passes(order)
    dispatch.dispatch_due()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and len(purchases(sandbox, order)) == 1
