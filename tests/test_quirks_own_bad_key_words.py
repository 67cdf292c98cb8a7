"""Quirk 3 of issue 14: an upstream with its own words for a refused key or account ("API is
disable for this user or user not found"; the sandbox's `own_bad_key_words`).

The client recognises key and account refusals from a table of the wordings real panels use
(providers.client.KEY_REFUSALS); the panel then stops buying from that provider, alerts the
admins once, and lets the orders routed there wait, money held, instead of failing each one.
End to end through the real client and the sandbox over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from orders import dispatch, polling
from orders.errors import Refusal
from orders.models import Order
from orders.placing import place_order
from panel.models import LedgerEntry
from providers.client import ErrorKind, classify_error
from providers.models import Provider
from providers.sandbox.server import OWN_BAD_KEY_WORDS
from providers.sync import check_balance, sync_catalog
from tests.conftest import make_service

pytestmark = pytest.mark.django_db

REVOKED_KEY = "a-key-this-upstream-disabled"


@pytest.fixture
def admin_with_email(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-12345678")


@pytest.mark.parametrize("text", [
    OWN_BAD_KEY_WORDS,
    "API is Disable for this user or User Not Found! Contact the Support",
    "Invalid API key", "Invalid api key", "Incorrect API key", "api key is not valid",
    "User not found", "Your account is banned", "Your account has been suspended",
    "Account is blocked", "API access is disabled", "error.invalid_api_key", "Unauthorized",
])
def test_key_and_account_refusals_in_real_panels_words_are_recognised(text):
    assert classify_error(text) == ErrorKind.INVALID_KEY


@pytest.mark.parametrize(("text", "kind"), [
    ("Incorrect order ID", ErrorKind.INCORRECT_ORDER),
    ("Refill not found", ErrorKind.INCORRECT_ORDER),
    ("Incorrect service ID", ErrorKind.INCORRECT_SERVICE),
    ("Username not found", ErrorKind.OTHER),
    ("Incorrect request", ErrorKind.OTHER),
])
def test_other_refusals_are_not_taken_for_a_refused_key(text, kind):
    assert classify_error(text) == kind


def _revoke_key(provider: Provider) -> None:
    """The upstream disabled our user: the key it knew is no longer one it answers."""
    provider.api_key = REVOKED_KEY
    provider.save()


def _make_due(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))


def test_an_order_refused_in_the_upstreams_own_key_words_pauses_buying_and_waits(
        catalog, alice, sandbox, admin_with_email):
    sandbox.set_quirk("own_bad_key_words")
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/key", "quantity": 1000})
    _revoke_key(catalog)

    dispatch.dispatch_one(order.pk)

    order.refresh_from_db()
    catalog.refresh_from_db()
    adds = sandbox.adds(REVOKED_KEY)
    assert len(adds) == 1 and adds[0]["error"]  # asked once, refused in the quirk's words
    assert catalog.buying_paused_at is not None
    assert "refused our API key" in catalog.currency_mismatch
    assert OWN_BAD_KEY_WORDS in catalog.currency_mismatch
    # The order waits for the admin, money held: not failed, not refunded.
    assert order.status == Order.Status.QUEUED and order.refunded == 0
    assert not LedgerEntry.objects.filter(order_id=order.pk, kind="refund").exists()
    assert "buying paused" in order.error or "refused" in order.error
    assert len(mail.outbox) == 1 and "Buying paused" in mail.outbox[0].subject
    assert "API key" in mail.outbox[0].body

    # Nothing more is sent there until an admin resumes buying, nor sold; one alert only.
    with pytest.raises(Refusal):
        place_order(alice, service.pk, {"link": "https://x.com/key2", "quantity": 1000})
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
    dispatch.dispatch_due()
    assert len(sandbox.adds(REVOKED_KEY)) == 1 and len(mail.outbox) == 1

    # The admin fixes the key and resumes: the order goes out.
    catalog.api_key = sandbox.key
    catalog.save()
    catalog.resume_buying()
    Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
    dispatch.dispatch_due()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and len(sandbox.adds(sandbox.key)) == 1


def test_key_words_about_the_order_while_the_key_works_fail_only_that_route(
        catalog, alice, sandbox):
    """"User not found" can be about a username the order names: the balance call, which
    names nothing but the key, says the key works, so buying goes on."""
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/user", "quantity": 1000})
    sandbox.set_fault("error", action="add", message="User not found", times=1)

    dispatch.dispatch_one(order.pk)

    order.refresh_from_db()
    catalog.refresh_from_db()
    assert catalog.buying_paused_at is None
    assert order.status == Order.Status.FAILED and order.refunded == order.charge


def test_a_balance_check_refused_in_its_own_words_pauses_and_alerts_once(
        provider, sandbox, admin_with_email):
    sandbox.set_quirk("own_bad_key_words")
    _revoke_key(provider)

    assert check_balance(provider) is None
    assert check_balance(Provider.objects.get(pk=provider.pk)) is None

    provider.refresh_from_db()
    assert provider.buying_paused_at is not None and "balance check" in provider.currency_mismatch
    assert len(mail.outbox) == 1


def test_a_catalog_sync_and_a_status_poll_refused_so_pause_buying(
        catalog, alice, sandbox, settings):
    settings.POLL_FIRST_DELAY = 0
    sandbox.set_speed(600)
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/poll", "quantity": 1000})
    assert dispatch.dispatch_one(order.pk)
    sandbox.set_quirk("own_bad_key_words")
    _revoke_key(catalog)
    _make_due(order)

    stats = polling.poll_orders()

    catalog.refresh_from_db()
    assert stats.errors == 1
    assert catalog.buying_paused_at is not None and "status check" in catalog.currency_mismatch
    catalog.resume_buying()
    assert not sync_catalog(catalog).ok
    catalog.refresh_from_db()
    assert catalog.buying_paused_at is not None and "catalog sync" in catalog.currency_mismatch
