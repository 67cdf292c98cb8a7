"""Quirk 4 of issue 14: an upstream without refills and cancels, whose `refill`,
`refill_status` and `cancel` answer {"error": "Request Invalid"} (the sandbox's
`no_refill_cancel`).

The panel learns per provider which actions it lacks (from such replies, or an admin's
switch on the provider), stops offering refill and cancel for orders bought there (buttons
and API answers, one eligibility code), says so to the customer, and ends the requests
already made instead of retrying them. End to end through the real client and the sandbox
over HTTP; the Django admin's provider page shows and sets the unsupported actions."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from orders import cancels, dispatch, polling, refills
from orders.models import Order, OrderEvent, Refill
from orders.placing import place_order
from panel import ledger
from panel.models import ApiKey
from providers.client import ErrorKind, classify_error
from providers.models import Provider
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checks_at_once(settings):
    settings.POLL_FIRST_DELAY = 0


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-12345678")


@pytest.fixture
def service(catalog):
    return make_service(catalog, "Default", one_order_per_link=False,
                        upstream={"refill": True, "cancel": True}, refill=True, cancel=True)


def _requests(caplog: Any, action: str) -> int:
    return sum(1 for r in caplog.records if getattr(r, "upstream_action", None) == action)


def _sent(user, service, n: int) -> Order:
    order = place_order(user, service.pk, {"link": f"https://x.com/q{n}",
                                           "quantity": service.min_quantity})
    assert dispatch.dispatch_one(order.pk)
    return Order.objects.get(pk=order.pk)


def _completed(user, service, n: int) -> Order:
    order = _sent(user, service, n)
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    polling.poll_orders()
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    return order


def _api(client, key: str, action: str, **params: Any) -> Any:
    return client.post("/api/v2", {"key": key, "action": action, **params}).json()


@pytest.mark.parametrize("text", ["Request Invalid", "This action is Invalid",
                                  "Invalid action", "Unknown action", "Action not supported"])
def test_the_words_for_a_missing_action_are_recognised(text):
    assert classify_error(text) == ErrorKind.UNSUPPORTED


def test_the_protocols_incorrect_request_is_not_taken_for_a_missing_action():
    # Upstreams that take no lists of ids say this too; single requests then get through.
    assert classify_error("Incorrect request") == ErrorKind.OTHER


def test_a_refill_answered_request_invalid_is_learned_and_no_longer_offered(
        catalog, service, alice, sandbox, client, admin_user, caplog):
    ledger.deposit(alice.pk, Decimal("100"))
    first, second = _completed(alice, service, 1), _completed(alice, service, 2)
    third = _completed(alice, service, 3)
    sandbox.set_quirk("no_refill_cancel")
    key = ApiKey.issue(alice)[1]
    asked = _api(client, key, "refill", order=first.pk)  # the panel does not know yet
    refill = Refill.objects.get(pk=int(asked["refill"]))
    alone = refills.request_refill(alice, third.pk)
    Refill.objects.filter(pk=alone.pk).update(attempts=1)  # one that goes on its own
    caplog.set_level(logging.INFO, logger="providers.client")
    caplog.clear()

    refills.send_refills()
    refills.send_refills()

    alone.refresh_from_db()
    assert alone.status == Refill.Status.REJECTED and "no refill requests" in alone.error
    refill.refresh_from_db()
    catalog.refresh_from_db()
    assert catalog.unsupported_actions == ["refill"] and "Request Invalid" in (
        catalog.unsupported_learned)
    # Ended at once, with the reason, not retried: one request in all.
    assert refill.status == Refill.Status.REJECTED and "no refill requests" in refill.error
    assert _requests(caplog, "refill") == 1
    assert len(mail.outbox) == 1 and "has no refill" in mail.outbox[0].subject
    # The customer is told, and neither the page nor the API queues one that cannot succeed.
    assert _api(client, key, "refill", order=second.pk) == {
        "error": "Order not eligible for refill"}
    assert not Refill.objects.filter(order=second).exists()
    client.force_login(alice)
    page = client.get(reverse("order_detail", args=[second.pk])).content.decode()
    assert "takes no refill requests" in page
    assert reverse("order_refill", args=[second.pk]) not in page
    # The admin's provider page shows what it lacks.
    client.force_login(admin_user)
    listing = client.get(reverse("admin:providers_provider_changelist")).content.decode()
    assert "unsupported actions" in listing.lower() and ">refill<" in listing


def test_a_cancel_answered_request_invalid_ends_the_request_and_tells_the_customer(
        catalog, service, alice, sandbox, client):
    sandbox.set_speed(600)  # orders stay live
    ledger.deposit(alice.pk, Decimal("100"))
    live, other = _sent(alice, service, 1), _sent(alice, service, 2)
    sandbox.set_quirk("no_refill_cancel")
    key = ApiKey.issue(alice)[1]
    assert _api(client, key, "cancel", orders=str(live.pk)) == [{"order": live.pk, "cancel": 1}]

    assert cancels.send_cancels() == 1

    live.refresh_from_db()
    catalog.refresh_from_db()
    assert catalog.unsupported_actions == ["cancel"]
    assert live.status == Order.Status.PENDING and live.refunded == 0  # it goes on
    assert live.cancel_requested_at is None and "no cancel requests" in live.cancel_error
    assert live.flagged_at is None  # nothing for staff to do
    assert OrderEvent.objects.filter(order=live, kind="cancel_failed").exists()
    assert cancels.send_cancels() == 0  # nothing left to retry
    assert _api(client, key, "cancel", orders=str(other.pk)) == [
        {"order": other.pk, "cancel": {"error": "Order not eligible for cancel"}}]
    client.force_login(alice)
    page = client.get(reverse("order_detail", args=[live.pk])).content.decode()
    assert "takes no cancel requests" in page
    assert "did not go through" in page  # the history says what became of the request
    assert reverse("order_cancel", args=[live.pk]) not in page
    call_command("check_ledger")


def test_an_admin_switch_ends_queued_and_sent_requests_without_asking_the_upstream(
        catalog, service, alice, sandbox, client, admin_user, caplog):
    ledger.deposit(alice.pk, Decimal("100"))
    followed, waiting = _completed(alice, service, 1), _completed(alice, service, 2)
    sandbox.set_speed(600)
    live = _sent(alice, service, 3)
    sent = refills.request_refill(alice, followed.pk)
    refills.send_refills()
    sent.refresh_from_db()
    assert sent.status == Refill.Status.PENDING and sent.upstream_id
    queued = refills.request_refill(alice, waiting.pk)
    cancels.request_cancel(alice, live.pk)

    # The admin learned elsewhere that it has none of them, and says so on its page.
    client.force_login(admin_user)
    url = reverse("admin:providers_provider_change", args=[catalog.pk])
    form = client.get(url).content.decode()
    assert "Unsupported actions" in form and 'value="refill_status"' in form
    response = client.post(url, {
        "name": catalog.name, "api_url": catalog.api_url, "currency": "USD",
        "rate_to_panel": "1", "enabled": "on", "low_balance_threshold": "",
        "unsupported_actions": ["refill", "refill_status", "cancel"], "new_api_key": ""})
    assert response.status_code == 302
    catalog.refresh_from_db()
    assert catalog.unsupported_actions == ["cancel", "refill", "refill_status"]
    caplog.set_level(logging.INFO, logger="providers.client")
    caplog.clear()
    Refill.objects.filter(pk=sent.pk).update(next_check_at=timezone.now())

    refills.send_refills()
    polling.poll_refills()
    cancels.send_cancels()

    for action in ("refill", "refill_status", "cancel"):
        assert _requests(caplog, action) == 0
    queued.refresh_from_db()
    sent.refresh_from_db()
    live.refresh_from_db()
    assert queued.status == Refill.Status.REJECTED and "no refill requests" in queued.error
    # Sent, but the upstream can never say how it went: staff look, nothing polls it again.
    assert sent.status == Refill.Status.NEEDS_ATTENTION and sent.flagged_at is not None
    assert sent.next_check_at is None and "no refill statuses" in sent.flag_reason
    assert live.cancel_requested_at is None and "no cancel requests" in live.cancel_error
    assert refills.refill_obstacle(Order.objects.select_related(
        "service", "route__provider_service", "provider").get(pk=followed.pk)) != ""
    assert Provider.objects.get(pk=catalog.pk).can_refill is False


def test_a_refill_status_answered_request_invalid_stops_polling_and_goes_to_staff(
        catalog, service, alice, sandbox, caplog):
    ledger.deposit(alice.pk, Decimal("100"))
    order = _completed(alice, service, 1)
    sent = refills.request_refill(alice, order.pk)
    refills.send_refills()
    sandbox.set_quirk("no_refill_cancel")  # it stops answering refill statuses
    caplog.set_level(logging.INFO, logger="providers.client")
    caplog.clear()

    Refill.objects.filter(pk=sent.pk).update(next_check_at=timezone.now())
    polling.poll_refills()
    Refill.objects.filter(pk=sent.pk).update(next_check_at=timezone.now())
    polling.poll_refills()

    sent.refresh_from_db()
    catalog.refresh_from_db()
    assert catalog.unsupported_actions == ["refill_status"] and not catalog.can_refill
    assert sent.status == Refill.Status.NEEDS_ATTENTION and "Request Invalid" in sent.flag_reason
    # Asked until it said so (the client's read retries do not repeat an error reply).
    assert _requests(caplog, "refill_status") == 1
