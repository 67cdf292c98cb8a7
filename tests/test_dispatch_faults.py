"""Sending an order when the upstream misbehaves, against the sandbox provider over HTTP.

A definite failure (connection refused, an `{"error"}` reply) tries the service's next route,
or fails the order with one full refund when none is left. An unknown outcome (a timeout, a
5xx, an HTML page, a cut-off or garbled reply) parks the order for staff with the money held
and is never sent again by itself: API v2 has no idempotency key, so a resend can buy twice.
Only a person resends, links the upstream order, or refunds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orders.dispatch import dispatch_due, dispatch_one
from orders.models import Order, OrderEvent, Route, Service
from orders.placing import place_order
from orders.polling import poll_orders
from panel import ledger
from panel.models import LedgerEntry, User
from providers.models import Provider, ProviderService
from providers.sandbox import SandboxServer
from providers.sync import sync_catalog
from tests.conftest import make_provider, make_service, valid_add_params

pytestmark = pytest.mark.django_db

# Longer than the read timeout below, so a delayed reply is a timeout to the client.
READ_TIMEOUT = 0.5
FAULT_DELAY = 2.0
DEFINITE = ["refuse", "error"]
UNKNOWN = ["timeout_before", "timeout_after", "http500", "html", "truncated", "garbage"]
# Faults after which the sandbox has carried out the `add`: the order exists upstream.
BOUGHT_ANYWAY = {"timeout_after", "truncated"}


@pytest.fixture(autouse=True)
def short_timeouts(settings: Any) -> None:
    settings.PROVIDER_READ_TIMEOUT = READ_TIMEOUT
    settings.PROVIDER_CONNECT_TIMEOUT = 1.0
    settings.POLL_FIRST_DELAY = 0  # a sent order is due for its first check at once


@pytest.fixture
def backup_sandbox():
    server = SandboxServer(port=0, step_seconds=0, partial_every=0, rejected_every=0).start()
    yield server
    server.stop()


@pytest.fixture
def backup(db: Any, backup_sandbox: SandboxServer) -> Provider:
    """A second provider, on a second sandbox, selling the same catalog."""
    provider = make_provider(backup_sandbox, name="Backup")
    assert sync_catalog(provider).ok
    return provider


# --- helpers ---------------------------------------------------------------------------------

def add_route(service: Service, provider: Provider, priority: int = 1) -> Route:
    """Route `service` also to `provider`'s copy of its first route's upstream service."""
    first = service.routes.order_by("priority", "id").first()
    assert first is not None
    upstream = ProviderService.objects.get(provider=provider,
                                           upstream_id=first.provider_service.upstream_id)
    return Route.objects.create(service=service, provider_service=upstream, priority=priority)


def first_route(service: Service) -> Route:
    route = service.routes.order_by("priority", "id").first()
    assert route is not None
    return route


def place(user: User, service: Service) -> Order:
    params = valid_add_params({"service": service.pk, "type": service.type,
                               "min": service.min_quantity})
    return place_order(user, service.pk, params)


def balance(user: User) -> Decimal:
    user.refresh_from_db()
    return user.balance


def refunds(order: Order) -> list[Decimal]:
    return list(LedgerEntry.objects.filter(order_id=order.pk, kind=LedgerEntry.Kind.REFUND)
                .values_list("amount", flat=True))


def attempts(server: SandboxServer, order: Order) -> list[dict[str, Any]]:
    """Every `add` for this order that reached the sandbox, whatever became of it."""
    return [a for a in server.adds() if a["params"].get("link") == order.link]


def purchases(server: SandboxServer, order: Order) -> list[int]:
    """Upstream order ids the sandbox created for this order: what was bought."""
    return [a["order"] for a in attempts(server, order) if a["order"] is not None]


def break_upstream(server: SandboxServer, fault: str) -> None:
    # `refuse` closes the sandbox's listener for `delay` seconds; the others act on `add` only.
    server.set_fault(fault, action="add", delay=FAULT_DELAY)


def assert_ledger_balanced() -> None:
    assert ledger.mismatched_balances() == []


# --- definite failures -----------------------------------------------------------------------

@pytest.mark.parametrize("fault", DEFINITE)
def test_definite_failure_fails_over_to_the_next_route(
        fault, sandbox, catalog, backup, backup_sandbox, alice):
    service = make_service(catalog, "Default")
    primary, second = first_route(service), add_route(service, backup)
    order = place(alice, service)
    paid = balance(alice)
    break_upstream(sandbox, fault)

    assert dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert (order.route_id, order.provider_id) == (second.pk, backup.pk)
    assert purchases(backup_sandbox, order) == [order.upstream_id]
    assert purchases(sandbox, order) == []
    assert order.tried_routes == [primary.pk]
    assert OrderEvent.objects.filter(order=order, kind="route_failed").count() == 1
    assert refunds(order) == [] and balance(alice) == paid

    poll_orders()
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert refunds(order) == [] and balance(alice) == paid
    assert_ledger_balanced()


@pytest.mark.parametrize("routes", [1, 2], ids=["one-route", "every-route-fails"])
@pytest.mark.parametrize("fault", DEFINITE)
def test_definite_failure_with_no_route_left_fails_and_refunds_exactly_once(
        fault, routes, sandbox, catalog, backup, backup_sandbox, alice):
    service = make_service(catalog, "Default")
    if routes == 2:
        add_route(service, backup)
        break_upstream(backup_sandbox, fault)
    before = balance(alice)
    order = place(alice, service)
    assert balance(alice) == before - order.charge
    break_upstream(sandbox, fault)

    assert dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert order.customer_status == "Canceled"
    assert order.error
    assert order.upstream_id is None
    assert refunds(order) == [order.charge]
    assert order.refunded == order.charge
    assert balance(alice) == before
    assert purchases(sandbox, order) == [] and purchases(backup_sandbox, order) == []

    # Nothing more happens, whoever asks again.
    assert dispatch_one(order.pk) is False
    assert dispatch_due() == 0
    assert order.fail_and_refund(None, "again") is False
    assert refunds(order) == [order.charge]
    assert balance(alice) == before
    assert_ledger_balanced()


def test_an_error_reply_is_recorded_as_the_reason(sandbox, catalog, alice):
    service = make_service(catalog, "Default")
    order = place(alice, service)
    sandbox.set_fault("error", action="add", message="neworder.error.link")

    dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert "neworder.error.link" in order.error


# --- unknown outcomes ------------------------------------------------------------------------

@pytest.mark.parametrize("fault", UNKNOWN)
def test_unknown_outcome_parks_the_order_with_the_money_held_and_never_resends(
        fault, sandbox, catalog, backup, backup_sandbox, alice):
    service = make_service(catalog, "Default")
    add_route(service, backup)  # a next route exists: trying it could buy twice, too
    order = place(alice, service)
    paid = balance(alice)
    break_upstream(sandbox, fault)

    assert dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION
    assert order.customer_status == "Pending"
    assert "outcome unknown" in order.error
    assert order.flagged_at is not None and order.flag_reason == order.error
    assert order.upstream_id is None and order.route_id is None
    assert refunds(order) == [] and balance(alice) == paid

    # Neither the on-commit kick replayed nor the sweep sends it again.
    assert dispatch_one(order.pk) is False
    assert dispatch_due() == 0
    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION
    assert len(attempts(sandbox, order)) == 1
    bought = purchases(sandbox, order)
    assert len(bought) == (1 if fault in BOUGHT_ANYWAY else 0)
    assert attempts(backup_sandbox, order) == []
    assert refunds(order) == [] and balance(alice) == paid
    assert_ledger_balanced()


# --- what staff do with a parked order -------------------------------------------------------

def park(server: SandboxServer, service: Service, user: User, fault: str) -> Order:
    order = place(user, service)
    break_upstream(server, fault)
    dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION
    return order


def test_staff_resend_buys_once_more_only_by_that_action(
        sandbox, catalog, backup, backup_sandbox, alice, staff_member):
    service = make_service(catalog, "Default")
    second = add_route(service, backup)
    order = park(sandbox, service, alice, "timeout_before")
    paid = balance(alice)
    assert dispatch_due() == 0 and attempts(backup_sandbox, order) == []

    # Staff checked the first provider never created it, and resend to the second.
    assert order.resend(second, staff_member.pk)
    assert order.resend(second, staff_member.pk) is False  # a double click does nothing
    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED and order.forced_route_id == second.pk

    assert dispatch_one(order.pk)
    assert dispatch_one(order.pk) is False

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert (order.route_id, order.provider_id) == (second.pk, backup.pk)
    assert purchases(backup_sandbox, order) == [order.upstream_id]
    assert len(attempts(sandbox, order)) == 1 and purchases(sandbox, order) == []
    event = OrderEvent.objects.get(order=order, kind="resend")
    assert event.actor_id == staff_member.pk
    poll_orders()
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert refunds(order) == [] and balance(alice) == paid
    assert_ledger_balanced()


def test_staff_link_the_upstream_order_and_polling_completes_it(
        sandbox, catalog, backup, alice, staff_member):
    service = make_service(catalog, "Default")
    add_route(service, backup)
    order = park(sandbox, service, alice, "timeout_after")
    paid = balance(alice)
    [upstream_id] = purchases(sandbox, order)  # it was bought, though we never heard

    assert order.attach_upstream_id(upstream_id, first_route(service), staff_member.pk)
    poll_orders()

    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert (order.upstream_id, order.provider_id) == (upstream_id, catalog.pk)
    assert order.flagged_at is None
    assert purchases(sandbox, order) == [upstream_id]
    assert refunds(order) == [] and balance(alice) == paid
    assert OrderEvent.objects.get(order=order, kind="attach").actor_id == staff_member.pk
    assert_ledger_balanced()


def test_staff_fail_and_refund_pays_back_once(sandbox, catalog, backup, alice, staff_member):
    service = make_service(catalog, "Default")
    add_route(service, backup)
    before = balance(alice)
    order = park(sandbox, service, alice, "garbage")

    assert order.fail_and_refund(staff_member.pk, "checked upstream: never bought")
    assert order.fail_and_refund(staff_member.pk, "again") is False

    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert refunds(order) == [order.charge]
    entry = LedgerEntry.objects.get(order_id=order.pk, kind=LedgerEntry.Kind.REFUND)
    assert entry.actor_id == staff_member.pk
    assert balance(alice) == before
    assert dispatch_due() == 0 and len(attempts(sandbox, order)) == 1
    assert_ledger_balanced()


# --- routes that must not be asked -----------------------------------------------------------

def spoil(route: Route, sandbox: SandboxServer, how: str, order: Order) -> None:
    if how == "provider-disabled":
        Provider.objects.filter(pk=route.provider_service.provider_id).update(enabled=False)
    elif how == "upstream-service-gone":
        sandbox.remove_services([route.provider_service.upstream_id])
        assert sync_catalog(route.provider_service.provider).ok
        route.provider_service.refresh_from_db()
        assert route.provider_service.offered is False
    else:  # costlier than what the customer paid: buying would be at a loss
        ProviderService.objects.filter(pk=route.provider_service_id).update(
            cost_rate=order.rate * 2)


SPOILED = ["provider-disabled", "upstream-service-gone", "costlier-than-paid"]


@pytest.mark.parametrize("how", SPOILED)
def test_a_route_that_cannot_take_the_order_is_skipped(
        how, sandbox, catalog, backup, backup_sandbox, alice):
    service = make_service(catalog, "Default")
    primary, second = first_route(service), add_route(service, backup)
    order = place(alice, service)
    paid = balance(alice)
    spoil(primary, sandbox, how, order)

    assert dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert (order.route_id, order.provider_id) == (second.pk, backup.pk)
    assert attempts(sandbox, order) == []
    assert purchases(backup_sandbox, order) == [order.upstream_id]
    assert refunds(order) == [] and balance(alice) == paid


@pytest.mark.parametrize("how", SPOILED)
def test_with_no_route_able_to_take_it_the_order_fails_and_is_refunded(
        how, sandbox, catalog, alice):
    service = make_service(catalog, "Default")
    before = balance(alice)
    order = place(alice, service)
    spoil(first_route(service), sandbox, how, order)

    assert dispatch_one(order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert attempts(sandbox, order) == []
    assert refunds(order) == [order.charge] and balance(alice) == before
    if how == "costlier-than-paid":
        assert "more than the" in order.error
    assert_ledger_balanced()
