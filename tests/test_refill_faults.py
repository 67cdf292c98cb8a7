"""Refills when the upstream misbehaves, against the sandbox provider over HTTP.

A batch the upstream refuses as a whole (it takes no `orders=` lists, or one bad id spoils
the list) is sent again one refill at a time, so one bad id cannot hold up the rest. Every
definite refusal counts and is written on the refill; after REFILL_MAX_ATTEMPTS it is
Rejected with the reason and flagged for staff. An unknown outcome is parked and flagged.
The watchdog flags refills that stop moving. No refill moves money."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import dispatch, polling, refills
from orders.models import Order, OrderEvent, Refill
from orders.placing import place_order
from orders.watchdog import run_watchdog
from panel import ledger
from panel.models import ApiKey, LedgerEntry
from tests.conftest import make_service

pytestmark = pytest.mark.django_db

UNKNOWN_UPSTREAM_ID = 987_654_321


def _requested_refills(catalog: Any, user: Any, count: int) -> list[Refill]:
    ledger.deposit(user.pk, Decimal("1000"))
    service = make_service(catalog, "Default", one_order_per_link=False,
                           upstream={"refill": True}, refill=True)
    for i in range(count):
        place_order(user, service.pk, {"link": f"https://x.com/r{i}",
                                       "quantity": service.min_quantity})
    assert dispatch.dispatch_due(limit=count) == count
    orders = list(Order.objects.filter(service=service).order_by("pk"))
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(next_check_at=timezone.now())
    polling.poll_orders()
    for order in orders:
        refills.request_refill(user, order.pk)
    return list(Refill.objects.filter(order__in=orders).order_by("pk"))


def _make_due(refill_list: list[Refill]) -> None:
    Refill.objects.filter(pk__in=[r.pk for r in refill_list]).update(
        next_check_at=timezone.now() - timedelta(seconds=1))


def _statuses(refill_list: list[Refill]) -> list[str]:
    return [Refill.objects.get(pk=r.pk).status for r in refill_list]


def test_a_refill_batch_one_bad_id_spoils_is_sent_again_one_by_one_then_the_bad_one_rejected(
        catalog, alice, sandbox, settings, client):
    settings.REFILL_MAX_ATTEMPTS = 3
    sent = _requested_refills(catalog, alice, 5)
    bad = sent[2]
    Order.objects.filter(pk=bad.order_id).update(upstream_id=UNKNOWN_UPSTREAM_ID)
    sandbox.set_fault("strict_lists", action="refill")

    assert refills.send_refills() == 5  # refused as a whole: nothing was created upstream
    got = list(Refill.objects.filter(pk__in=[r.pk for r in sent]))
    assert all(r.status == Refill.Status.QUEUED and r.attempts == 1 for r in got)
    assert all("Incorrect order ID" in r.error for r in got)
    _make_due(sent)
    assert refills.send_refills() == 5  # now each alone: the four good ones go through
    statuses = _statuses(sent)
    assert statuses.count(Refill.Status.PENDING) == 4 and statuses[2] == Refill.Status.QUEUED
    _make_due(sent)
    assert refills.send_refills() == 1

    bad.refresh_from_db()
    assert bad.status == Refill.Status.REJECTED and bad.attempts == 3
    assert "Incorrect order ID" in bad.error and bad.finished_at is not None
    assert bad.flagged_at is not None and "3 attempts" in bad.flag_reason
    assert OrderEvent.objects.filter(order_id=bad.order_id, kind="refill_rejected").exists()
    key = ApiKey.issue(alice)[1]
    reply = client.post("/api/v2", {"key": key, "action": "refill_status", "refill": bad.pk})
    assert reply.json() == {"status": "Rejected"}
    _make_due(sent)
    assert refills.send_refills() == 0
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    call_command("check_ledger")


def test_an_upstream_that_refuses_lists_gets_each_refill_alone(catalog, alice, sandbox):
    sent = _requested_refills(catalog, alice, 3)
    sandbox.set_fault("no_lists", action="refill")

    refills.send_refills()
    assert _statuses(sent) == [Refill.Status.QUEUED] * 3
    _make_due(sent)
    refills.send_refills()

    got = list(Refill.objects.filter(pk__in=[r.pk for r in sent]))
    assert all(r.status == Refill.Status.PENDING and r.upstream_id for r in got)
    assert all(r.error == "" for r in got)
    call_command("check_ledger")


def test_a_refill_whose_outcome_is_unknown_is_parked_and_flagged_for_staff(
        catalog, alice, sandbox, settings):
    settings.PROVIDER_READ_TIMEOUT = 0.5
    [refill] = _requested_refills(catalog, alice, 1)
    sandbox.set_fault("timeout_after", action="refill", delay=2, times=1)

    refills.send_refills()

    refill.refresh_from_db()
    assert refill.status == Refill.Status.NEEDS_ATTENTION and "unknown" in refill.error
    assert refill.flagged_at is not None and refill.flag_reason
    _make_due([refill])
    assert refills.send_refills() == 0  # never resent by itself: it may refill twice
    call_command("check_ledger")


def test_refills_without_progress_are_flagged_by_the_watchdog(catalog, alice, settings):
    settings.WATCHDOG_QUEUED_MINUTES = 30
    settings.WATCHDOG_REFILL_STALLED_HOURS = 48
    queued, stalled, moving = _requested_refills(catalog, alice, 3)
    now = timezone.now()
    Refill.objects.filter(pk=queued.pk).update(next_check_at=now - timedelta(hours=1))
    Refill.objects.filter(pk__in=[stalled.pk, moving.pk]).update(
        status=Refill.Status.IN_PROGRESS, upstream_id=5, submitted_at=now - timedelta(days=5),
        last_progress_at=now - timedelta(hours=49), error="status check: Refill not found")
    Refill.objects.filter(pk=moving.pk).update(upstream_id=6, last_progress_at=now)

    first, second = run_watchdog(), run_watchdog()

    assert first["refills_flagged"] == 2 and second["refills_flagged"] == 0
    got = {r.pk: r for r in Refill.objects.filter(pk__in=[queued.pk, stalled.pk, moving.pk])}
    assert "worker" in got[queued.pk].flag_reason
    assert "no progress for 48h" in got[stalled.pk].flag_reason
    assert "Refill not found" in got[stalled.pk].flag_reason  # and the last error says why
    assert got[moving.pk].flagged_at is None
    assert OrderEvent.objects.filter(order_id=stalled.order_id, kind="refill_flagged").exists()


@pytest.mark.parametrize("fault", [None, "strict_lists", "no_lists"])
def test_a_refill_sweep_takes_the_same_number_of_queries_whatever_its_size(
        catalog, alice, sandbox, fault):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if fault:
        sandbox.set_fault(fault, action="refill")
    counts = []
    for size in (2, 8):
        sent = _requested_refills(catalog, alice, size)
        if fault == "strict_lists":
            Order.objects.filter(pk=sent[0].order_id).update(
                upstream_id=UNKNOWN_UPSTREAM_ID + size)
        for _ in range(2):  # the batch, then (after a whole-batch refusal) each alone
            _make_due(sent)
            with CaptureQueriesContext(connection) as ctx:
                assert refills.send_refills() in (size, size - 1, 0)
            counts.append(len(ctx.captured_queries))
    assert counts[:2] == counts[2:]
