"""Money under concurrency: real threads against real PostgreSQL.

Each test starts its threads at one `threading.Barrier` so they really run at once, and every
thread closes its own database connection when it ends. A plain TestCase transaction would hide
these races, hence `transaction=True`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from orders import dispatch, polling, pricing
from orders.errors import NOT_ENOUGH_FUNDS, Refusal
from orders.models import Order, OrderEvent, Service
from orders.placing import place_order
from panel import ledger
from panel.models import LedgerEntry, User
from panel.money import quantize_refund
from providers.client import OrderStatus, UpstreamStatus
from tests.conftest import make_customer, make_service

race = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Customers are made by the dozen here: a real password hash would be most of the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_together(targets: list[Callable[[], Any]], timeout: float = 60) -> list[Any]:
    """Run each target in its own thread, all released at once; a target's result or the
    exception it raised, in order."""
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)

    def work(index: int, target: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = target()
        except BaseException as exc:  # the test inspects it
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, t), daemon=True)
               for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def unexpected(results: list[Any], *allowed: type[BaseException]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException) and not isinstance(r, allowed)]


def entries(user_id: int) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(user_id=user_id).order_by("id"))


def assert_balance_is_sum_of_entries(user_id: int) -> None:
    balance = User.objects.get(pk=user_id).balance
    assert balance == sum((e.amount for e in entries(user_id)), Decimal(0))
    assert balance >= 0
    assert ledger.mismatched_balances() == []


def link(n: object) -> str:
    return f"https://instagram.com/p/race{n}"


def sent_order(user: User, service: Service, quantity: int, n: object) -> Order:
    """An order placed and bought upstream (Pending at the sandbox, with an upstream id)."""
    order = place_order(user, service.pk, {"link": link(n), "quantity": quantity})
    assert dispatch.dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and order.upstream_id is not None, order.error
    return order


def upstream_reply(order: Order, sandbox: Any, status: str, remains: int | str) -> OrderStatus:
    """What the sandbox answers about this order once forced to `status`."""
    assert order.provider is not None and order.upstream_id is not None
    sandbox.force_order(order.upstream_id, status=status, remains=remains)
    reply = order.provider.client().status(order.upstream_id)
    assert reply.status == UpstreamStatus(status)
    return reply


# --- placing -----------------------------------------------------------------------------


@race
def test_overspend_race_accepts_exactly_what_the_balance_covers(catalog):
    service = make_service(catalog, one_order_per_link=False)
    quantity = service.min_quantity
    probe = place_order(make_customer("prober", "100"), service.pk,
                        {"link": link("probe"), "quantity": quantity})
    priced = Service.objects.with_routes().get(pk=service.pk)
    customer = make_customer("spender", "0")
    rate = pricing.customer_rate(priced, customer)
    assert rate is not None
    charge = pricing.charge_for(rate, quantity, service.type)
    assert probe.charge == charge > 0
    ledger.deposit(customer.pk, 50 * charge, memo="exactly fifty orders")

    workers, calls_each = 20, 10

    def place_ten() -> list[Order | Refusal]:
        user = User.objects.get(pk=customer.pk)  # this thread's own instance
        outcomes: list[Order | Refusal] = []
        for _ in range(calls_each):
            try:
                outcomes.append(place_order(user, service.pk,
                                            {"link": link("same"), "quantity": quantity}))
            except Refusal as exc:
                outcomes.append(exc)
        return outcomes

    results = run_together([place_ten] * workers)

    assert unexpected(results) == []
    outcomes = [o for r in results for o in r]
    placed = [o for o in outcomes if isinstance(o, Order)]
    refused = [o for o in outcomes if isinstance(o, Refusal)]
    assert len(outcomes) == 200
    assert len(placed) == 50 and len(refused) == 150
    assert {e.message for e in refused} == {NOT_ENOUGH_FUNDS}
    assert Order.objects.filter(user=customer).count() == 50
    assert set(Order.objects.filter(user=customer).values_list("status", flat=True)) == {
        Order.Status.QUEUED}
    customer.refresh_from_db()
    assert customer.balance == 0
    charges = LedgerEntry.objects.filter(user=customer, kind=LedgerEntry.Kind.CHARGE)
    assert charges.count() == 50
    assert set(charges.values_list("amount", flat=True)) == {-charge}
    assert set(charges.values_list("order_id", flat=True)) == {o.pk for o in placed}
    assert_balance_is_sum_of_entries(customer.pk)


# --- refunds -----------------------------------------------------------------------------


@race
@pytest.mark.parametrize("remains", [300, "Unknown"], ids=["remains-known", "remains-unknown"])
def test_concurrent_polls_and_a_staff_refund_refund_a_partial_order_once(
        catalog, sandbox, alice, staff_member, remains):
    service = make_service(catalog)
    order = sent_order(alice, service, 1000, "partial")
    reply = upstream_reply(order, sandbox, "Partial", remains)
    pollers = [Order.objects.select_related("service").get(pk=order.pk) for _ in range(6)]
    assert {p.status for p in pollers} == {Order.Status.PENDING}  # loaded while live

    def poll(instance: Order) -> Callable[[], bool]:
        return lambda: instance.apply_upstream_status(reply)

    def staff_refund() -> bool:
        # Staff act on what their page shows: the order once it shows Partial.
        for _ in range(2000):
            seen = Order.objects.select_related("service").get(pk=order.pk)
            if seen.status == Order.Status.PARTIAL:
                return seen.refund_partial_by_hand(400, staff_member.pk)
            threading.Event().wait(0.005)
        raise AssertionError("the order never showed Partial")

    results = run_together([poll(p) for p in pollers] + [staff_refund, staff_refund])

    assert unexpected(results) == []
    poll_results, staff_results = results[:6], results[6:]
    assert poll_results.count(True) == 1  # one poller finished it, the others saw it done
    refunds = list(LedgerEntry.objects.filter(order_id=order.pk, kind=LedgerEntry.Kind.REFUND))
    assert len(refunds) == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIAL
    assert order.refunded == refunds[0].amount > 0
    if remains == "Unknown":
        # The upstream did not say what is missing: flagged, and one staff click refunds.
        assert order.flagged_at is not None
        assert staff_results.count(True) == 1
        assert order.refunded == order.undelivered_share(400)
        assert refunds[0].actor_id == staff_member.pk
    else:
        # The poll refunded the undelivered share; staff cannot add a second refund.
        assert staff_results == [False, False]
        assert order.remains == 300
        assert order.refunded == order.undelivered_share(300) == quantize_refund(
            order.charge * 3 / 10)
    assert OrderEvent.objects.filter(order=order, kind="refund").count() == 1
    assert_balance_is_sum_of_entries(alice.pk)


def order_snapshot(order_id: int) -> tuple[Any, ...]:
    return (
        Order.objects.filter(pk=order_id).values().get(),
        list(OrderEvent.objects.filter(order_id=order_id).values_list("pk", "kind")),
        list(LedgerEntry.objects.filter(order_id=order_id).values_list("pk", "kind", "amount")),
    )


@race
@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_the_same_status_replayed_100_times_changes_nothing_after_the_first(
        catalog, sandbox, alice, mode):
    service = make_service(catalog)
    cases = {
        "Partial": (sent_order(alice, service, 1000, f"{mode}-partial"), 250),
        "Canceled": (sent_order(alice, service, 1000, f"{mode}-canceled"), 1000),
        "Completed": (sent_order(alice, service, 1000, f"{mode}-completed"), 0),
    }
    replies = {status: upstream_reply(order, sandbox, status, remains)
               for status, (order, remains) in cases.items()}
    # Every replay works from an instance loaded while the order was still live, as a slow
    # poller or a duplicate task would.
    stale = {status: [Order.objects.select_related("service").get(pk=order.pk)
                      for _ in range(50)] for status, (order, _) in cases.items()}

    def replays(status: str) -> list[Callable[[], int]]:
        order, reply = cases[status][0], replies[status]
        assert order.upstream_id is not None
        by_instance = [lambda i=i: int(i.apply_upstream_status(reply)) for i in stale[status]]
        by_batch = [lambda: polling.apply_replies([(order.pk, order.upstream_id)],
                                                  {order.upstream_id: reply})] * 50
        return [f for pair in zip(by_instance, by_batch, strict=True) for f in pair]

    for status in cases:
        calls = replays(status)
        if mode == "concurrent":
            changed = [r for chunk in range(0, 100, 20)
                       for r in run_together(calls[chunk:chunk + 20])]
            assert unexpected(changed) == []
        else:
            changed = [call() for call in calls]
        assert len(changed) == 100 and sum(changed) == 1, status
        first = order_snapshot(cases[status][0].pk)
        # And replayed again, one by one, from fresh and stale instances alike.
        for call in calls:
            assert call() == 0
        fresh = Order.objects.select_related("service").get(pk=cases[status][0].pk)
        assert not fresh.apply_upstream_status(replies[status])
        assert order_snapshot(cases[status][0].pk) == first

    partial, canceled, completed = (Order.objects.get(pk=cases[s][0].pk) for s in cases)
    assert partial.status == Order.Status.PARTIAL
    assert partial.refunded == quantize_refund(partial.charge / 4) > 0
    assert canceled.status == Order.Status.CANCELED and canceled.refunded == canceled.charge
    assert completed.status == Order.Status.COMPLETED and completed.refunded == 0
    for order in (partial, canceled, completed):
        kinds = list(LedgerEntry.objects.filter(order_id=order.pk).values_list("kind", flat=True))
        expected = ["charge"] if order is completed else ["charge", "refund"]
        assert sorted(kinds) == expected
    assert_balance_is_sum_of_entries(alice.pk)


# --- dispatch ----------------------------------------------------------------------------


@race
def test_the_same_order_kicked_five_times_at_once_is_bought_once(catalog, sandbox, alice):
    service = make_service(catalog)
    orders = [place_order(alice, service.pk, {"link": link(f"kick{n}"), "quantity": 100})
              for n in range(3)]
    kicks: list[Callable[[], Any]] = [
        functools.partial(dispatch.dispatch_one, o.pk) for o in orders for _ in range(5)]
    sweeps: list[Callable[[], Any]] = [dispatch.dispatch_due, dispatch.dispatch_due]

    results = run_together(kicks + sweeps)

    assert unexpected(results) == []
    kick_results, sweep_results = results[:15], results[15:]
    for n in range(3):
        assert kick_results[5 * n:5 * n + 5].count(True) <= 1
    assert kick_results.count(True) + sum(sweep_results) == 3  # each claimed exactly once
    adds = [a for a in sandbox.adds() if a["error"] is None]
    for order in orders:
        order.refresh_from_db()
        its_adds = [a for a in adds if a["params"].get("link") == order.link]
        assert len(its_adds) == 1, its_adds
        assert order.status == Order.Status.PENDING
        assert order.upstream_id == its_adds[0]["order"]
        assert OrderEvent.objects.filter(order=order, kind="sent").count() == 1
        assert LedgerEntry.objects.filter(order_id=order.pk).count() == 1
    assert len(adds) == 3
    assert_balance_is_sum_of_entries(alice.pk)


# --- the ledger itself -------------------------------------------------------------------


@race
def test_staff_adjustments_cannot_overdraw(alice, staff_member):
    def take_15() -> LedgerEntry:
        return ledger.adjust(alice.pk, Decimal("-15"), actor_id=staff_member.pk,
                             reason="chargeback")

    results = run_together([take_15] * 10)

    assert unexpected(results, ledger.InsufficientFunds) == []
    assert sum(isinstance(r, LedgerEntry) for r in results) == 6  # 6 × 15 of the 100
    alice.refresh_from_db()
    assert alice.balance == Decimal("10")
    assert_balance_is_sum_of_entries(alice.pk)

    with pytest.raises(ledger.InsufficientFunds):
        ledger.adjust(alice.pk, Decimal("-10.00001"), actor_id=staff_member.pk, reason="x")
    with pytest.raises(ledger.LedgerError):
        ledger.adjust(alice.pk, Decimal("-1"), actor_id=staff_member.pk, reason="   ")
    with pytest.raises(ledger.LedgerError):
        ledger.adjust(alice.pk, Decimal("0"), actor_id=staff_member.pk, reason="nothing")
    taken = ledger.adjust(alice.pk, Decimal("-10"), actor_id=staff_member.pk, reason=" all ")
    assert taken.balance_after == 0 and taken.memo == "all" and taken.actor_id == staff_member.pk
    ledger.adjust(alice.pk, Decimal("2.5"), actor_id=staff_member.pk, reason="goodwill")
    alice.refresh_from_db()
    assert alice.balance == Decimal("2.5")
    assert_balance_is_sum_of_entries(alice.pk)


@pytest.mark.django_db
def test_ledger_rejects_update_and_delete_of_entries(alice):
    entry = LedgerEntry.objects.get(user=alice)
    table = LedgerEntry._meta.db_table
    statements = [
        (f"UPDATE {table} SET amount = amount + 1000 WHERE id = %s", [entry.pk]),  # noqa: S608
        (f"UPDATE {table} SET memo = 'edited' WHERE id = %s", [entry.pk]),  # noqa: S608
        (f"DELETE FROM {table} WHERE id = %s", [entry.pk]),  # noqa: S608
        (f"DELETE FROM {table}", []),  # noqa: S608
    ]
    for sql, params in statements:
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql, params)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal("1000"))
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()

    assert LedgerEntry.objects.filter(user=alice).values_list("amount", "memo").get() == (
        Decimal("100"), "test deposit")
    assert_balance_is_sum_of_entries(alice.pk)


@race
def test_a_second_charge_of_one_order_is_refused_by_the_database(catalog, alice):
    service = make_service(catalog)
    order = place_order(alice, service.pk, {"link": link("twice"), "quantity": 100})
    alice.refresh_from_db()
    balance = alice.balance

    with pytest.raises(ledger.AlreadyRecorded):
        ledger.charge(alice.pk, order.charge, order_id=order.pk)
    with pytest.raises(IntegrityError, match="ledger_one_charge_per_order"), \
            transaction.atomic():
        LedgerEntry.objects.create(user=alice, amount=-order.charge, kind="charge",
                                   order_id=order.pk, balance_after=0)
    alice.refresh_from_db()
    assert alice.balance == balance

    # Two charges of a new order id at once: one lands, the other is refused.
    racing_id = order.pk + 1000
    results = run_together([lambda: ledger.charge(alice.pk, Decimal("1"), order_id=racing_id)]
                           * 4)
    assert unexpected(results, ledger.AlreadyRecorded) == []
    assert sum(isinstance(r, LedgerEntry) for r in results) == 1
    # And the same for refunds of it.
    results = run_together([lambda: ledger.refund(alice.pk, Decimal("0.5"), order_id=racing_id)]
                           * 4)
    assert unexpected(results, ledger.AlreadyRecorded) == []
    assert sum(isinstance(r, LedgerEntry) for r in results) == 1
    with pytest.raises(ledger.LedgerError):
        ledger.refund(alice.pk, Decimal("2"), order_id=order.pk)  # more than was charged
    alice.refresh_from_db()
    assert alice.balance == balance - Decimal("0.5")
    assert LedgerEntry.objects.filter(order_id=order.pk).count() == 1
    assert_balance_is_sum_of_entries(alice.pk)
