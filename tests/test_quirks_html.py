"""An upstream in development mode prints pages of PHP warnings (HTML) before every JSON reply
(the sandbox's `html_prefix` quirk). Read-only calls (services, status, refill_status,
balance) find the JSON value at the end of such a body and go on as usual; an `add` answered
that way stays an unknown outcome: the order is parked for staff with the money held, since
it was in fact created upstream. The tail of a garbled JSON reply is never read as a reply."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch, polling, refills
from orders.models import Order, Refill
from orders.placing import place_order
from panel.models import LedgerEntry
from providers.client import Client, ErrorKind, ProviderError
from providers.models import ProviderService
from providers.sandbox.server import PHP_WARNINGS
from providers.sync import check_balance, sync_catalog
from tests.conftest import make_service
from tests.test_client_replies import Reply, Upstream

pytestmark = pytest.mark.django_db


def _due(model: type[Order] | type[Refill], pk: int) -> None:
    model.objects.filter(pk=pk).update(next_check_at=timezone.now() - timedelta(seconds=1))


def test_the_sandbox_sends_php_warnings_before_its_json(sandbox):
    import requests

    sandbox.set_quirk("html_prefix")
    reply = requests.post(sandbox.url, data={"key": sandbox.key, "action": "balance"}, timeout=5)

    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.content.startswith(PHP_WARNINGS) and len(PHP_WARNINGS) > 8000
    assert reply.content.endswith(b'"currency":"USD"}')


def test_catalog_sync_and_balance_read_the_json_after_the_warnings(provider, sandbox, caplog):
    sandbox.set_quirk("html_prefix")
    caplog.set_level(logging.WARNING, logger="providers.client")

    result = sync_catalog(provider)
    balance = check_balance(provider)

    assert result.ok
    assert ProviderService.objects.filter(provider=provider).count() == len(sandbox.services())
    assert balance == sandbox.balance()
    provider.refresh_from_db()
    assert provider.balance == sandbox.balance() and provider.balance_currency == "USD"
    assert "began with HTML" in caplog.text  # the upstream's state is worth a look


def test_an_order_is_polled_to_its_end_through_the_warnings(catalog, alice, sandbox):
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/html",
                                            "quantity": service.min_quantity})
    assert dispatch.dispatch_one(order.pk)
    sandbox.set_quirk("html_prefix")
    _due(Order, order.pk)

    stats = polling.poll_orders()

    order.refresh_from_db()
    assert stats.errors == 0 and order.status == Order.Status.COMPLETED
    assert order.upstream_charge == Decimal(sandbox.order(order.upstream_id)["charge"])
    assert order.poll_failures == 0


def test_a_refill_status_is_read_through_the_warnings(catalog, alice, sandbox):
    service = make_service(catalog, "Default", upstream={"refill": True}, refill=True)
    order = place_order(alice, service.pk, {"link": "https://x.com/refill",
                                            "quantity": service.min_quantity})
    assert dispatch.dispatch_one(order.pk)
    _due(Order, order.pk)
    polling.poll_orders()
    refill = refills.request_refill(alice, order.pk)
    assert refills.send_refills() == 1  # `refill` itself is not read-only: sent without quirk
    sandbox.set_quirk("html_prefix")
    _due(Refill, refill.pk)

    assert polling.poll_refills() == 1

    refill.refresh_from_db()
    assert refill.status in (Refill.Status.COMPLETED, Refill.Status.IN_PROGRESS)
    assert refill.error == ""


def test_an_add_answered_after_warnings_stays_unknown_and_holds_the_money(catalog, alice,
                                                                           sandbox):
    service = make_service(catalog, "Default")
    order = place_order(alice, service.pk, {"link": "https://x.com/add",
                                            "quantity": service.min_quantity})
    sandbox.set_quirk("html_prefix")

    dispatch.dispatch_one(order.pk)

    order.refresh_from_db()
    created = [a["order"] for a in sandbox.adds() if a["order"]]
    assert len(created) == 1  # the order exists upstream: a resend would buy it twice
    assert order.status == Order.Status.NEEDS_ATTENTION and order.upstream_id is None
    assert "outcome unknown" in order.error
    assert order.refunded == 0
    assert not LedgerEntry.objects.filter(order_id=order.pk, kind="refund").exists()
    assert len(sandbox.adds()) == 1  # and nothing was sent again


def test_an_error_after_the_warnings_is_a_definite_error_for_a_read(sandbox):
    sandbox.set_quirk("html_prefix")
    # A key the sandbox does not know: it answers {"error": "Invalid API key"}.
    with Client(sandbox.url, "not-a-key", allow_private=True) as client, \
            pytest.raises(ProviderError) as refused:
        client.balance()

    assert refused.value.kind == ErrorKind.INVALID_KEY and refused.value.definite


@pytest.mark.parametrize("body", [
    # A truncated batch whose tail happens to be one whole item: never a reply.
    '{"10001": {"status": "Completed", "remains": "0"}, "10002": {"status": "Partial"}',
    '[\n  {"status": "Partial", "remains": "5"},\n  {"status": "Completed", "remains": "0"}',
    # HTML whose JSON is cut short, and HTML with no JSON at all.
    PHP_WARNINGS.decode() + '{"status": "Completed", "remains": "0"',
    "<html><body>Welcome to nginx</body></html>",
])
def test_a_garbled_reply_is_garbage_even_if_its_tail_parses(body):
    upstream = Upstream()
    upstream.queue(Reply(body=body))
    try:
        with Client(upstream.url, "k" * 24, allow_private=True, read_retries=0) as client, \
                pytest.raises(ProviderError) as failed:
            client.status(10002)
    finally:
        upstream.stop()
    assert failed.value.kind == ErrorKind.BAD_REPLY and not failed.value.definite
