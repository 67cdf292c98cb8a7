"""Whatever customers, upstreams and staff do, in any order, the money stays right.

A Hypothesis state machine drives deposits, orders (affordable or not, plain or drip-fed by the
panel), dispatch to the live sandbox (with upstream faults), upstream statuses (odd `remains`
included), refills, cancels and staff actions; after every step it checks the ledger's
invariants. Each example runs in its own savepoint, rolled back in `teardown`: no real
concurrency is needed here (tests/test_money_races.py does that).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orders import dispatch, polling, pricing
from orders.cancels import request_cancel, send_cancels
from orders.errors import INCORRECT_ORDER, NOT_ENOUGH_FUNDS, Refusal
from orders.models import Order, Refill, Service
from orders.placing import place_order
from orders.refills import request_refill, send_refills
from panel import ledger
from panel.models import LedgerEntry, User
from panel.money import quantize_refund
from providers.client import OrderStatus, UpstreamStatus
from tests.conftest import make_customer, make_service

MACHINE_SETTINGS = hypothesis_settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
USERNAMES = itertools.count()
LINKS = itertools.count()  # unique across examples: the sandbox remembers its orders
LIVE_STATUSES = (Order.Status.QUEUED, Order.Status.SUBMITTING, Order.Status.NEEDS_ATTENTION,
                 *Order.POLLED)

amounts = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("300"), places=5)
odd_remains = st.one_of(
    st.none(),  # "Unknown"
    st.integers(min_value=-1000, max_value=-1),  # over-delivery
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=10**6, max_value=10**12),  # more than was ordered
)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Customers are made by the dozen here: a real password hash would be most of the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class MoneyMachine(RuleBasedStateMachine):
    """Set up by the test: the sandbox, the staff member and the services sold."""

    sandbox: Any
    staff: User
    plain: Service  # refill and cancel allowed, sent upstream as one order
    dripfed: Service  # drip-feed the panel runs itself, one upstream order per run

    def __init__(self) -> None:
        super().__init__()
        self.savepoint = transaction.atomic()
        self.savepoint.__enter__()
        self.customers: list[User] = []
        self.terminal: dict[int, str] = {}
        self.snapshot: list[tuple[str, int | None]] = []

    def teardown(self) -> None:
        self.sandbox.clear_faults()
        transaction.set_rollback(True)
        self.savepoint.__exit__(None, None, None)

    # --- helpers -------------------------------------------------------------------------

    def customer_ids(self) -> list[int]:
        return [c.pk for c in self.customers]

    def orders(self, *conditions: Q, **filters: Any) -> list[int]:
        """Ids of this example's orders (child runs included), oldest first."""
        return list(Order.objects.filter(*conditions, user_id__in=self.customer_ids(),
                                         **filters).order_by("pk").values_list("pk", flat=True))

    def pick(self, data: st.DataObject, ids: list[int]) -> Order | None:
        if not ids:
            return None
        order_id = data.draw(st.sampled_from(ids))
        return Order.objects.select_related("service", "user").get(pk=order_id)

    def has(self, status: str | None = None, *, sent: bool = False) -> bool:
        """Whether an order in `status` (bought upstream, if `sent`) exists, as of the last
        invariant check: preconditions read that instead of querying."""
        return any((status is None or s == status) and (not sent or upstream_id is not None)
                   for s, upstream_id in self.snapshot)

    def balance(self, user_id: int) -> Decimal:
        return User.objects.get(pk=user_id).balance

    def make_past_due(self) -> None:
        past = timezone.now() - timedelta(seconds=1)
        Order.objects.filter(user_id__in=self.customer_ids(), status__in=LIVE_STATUSES).update(
            next_check_at=past)
        Refill.objects.filter(user_id__in=self.customer_ids(), status__in=Refill.ACTIVE).update(
            next_check_at=past)

    # --- customers and their money -------------------------------------------------------

    @initialize()
    def customers_sign_up(self) -> None:
        n = next(USERNAMES)
        self.customers = [make_customer(f"rich{n}", "500"), make_customer(f"broke{n}", "0")]
        # Every example starts with one order bought upstream, so the rules have work to do.
        order = place_order(self.customers[0], self.plain.pk,
                            {"link": f"https://instagram.com/p/m{next(LINKS)}",
                             "quantity": 1000})
        assert dispatch.dispatch_one(order.pk)

    @rule(who=st.integers(0, 1), amount=amounts)
    def deposit(self, who: int, amount: Decimal) -> None:
        user_id = self.customers[who].pk
        before = self.balance(user_id)
        entry = ledger.deposit(user_id, amount, memo="top-up")
        assert entry.balance_after == before + amount == self.balance(user_id)

    @rule(who=st.integers(0, 1),
          amount=st.decimals(min_value=Decimal("-300"), max_value=Decimal("300"), places=5)
          .filter(lambda a: a != 0),
          reason=st.sampled_from(["goodwill", "chargeback", "  typo fix  "]))
    def staff_adjusts(self, who: int, amount: Decimal, reason: str) -> None:
        user_id = self.customers[who].pk
        before = self.balance(user_id)
        try:
            ledger.adjust(user_id, amount, actor_id=self.staff.pk, reason=reason)
        except ledger.InsufficientFunds:
            assert before + amount < 0
            assert self.balance(user_id) == before
        else:
            assert before + amount >= 0
            assert self.balance(user_id) == before + amount

    # --- placing ---------------------------------------------------------------------------

    @rule(who=st.integers(0, 1),
          quantity=st.one_of(st.sampled_from([50, 100, 1000, 5000]), st.integers(50, 100_000)),
          runs=st.one_of(st.none(), st.integers(2, 4)))
    def place(self, who: int, quantity: int, runs: int | None) -> None:
        user = User.objects.get(pk=self.customers[who].pk)
        service = Service.objects.with_routes().get(
            pk=(self.plain if runs is None else self.dripfed).pk)
        params: dict[str, object] = {"link": f"https://instagram.com/p/m{next(LINKS)}",
                                     "quantity": quantity}
        if runs is not None:
            params.update(runs=runs, interval=5)
        rate = pricing.customer_rate(service, user)
        assert rate is not None
        price = pricing.charge_for(rate, quantity * (runs or 1), service.type)
        try:
            order = place_order(user, service.pk, params)
        except Refusal as exc:
            assert exc.message == NOT_ENOUGH_FUNDS
            assert price > user.balance  # refused only when the balance does not cover it
            assert self.balance(user.pk) == user.balance
            return
        assert order.status == Order.Status.QUEUED and order.charge == price <= user.balance
        assert self.balance(user.pk) == user.balance - price

    # --- sending upstream ------------------------------------------------------------------

    @precondition(lambda self: self.has(Order.Status.QUEUED))
    @rule(data=st.data(),
          fault=st.sampled_from([None, None, None, "error", "http500", "truncated"]))
    def kick(self, data: st.DataObject, fault: str | None) -> None:
        order = self.pick(data, self.orders(status=Order.Status.QUEUED))
        if order is None:
            return
        if fault:
            self.sandbox.set_fault(fault, action="add", times=1)
        try:
            dispatch.dispatch_one(order.pk)
        finally:
            self.sandbox.clear_faults()
        order.refresh_from_db()
        waiting_run = order.parent_id is not None and order.next_check_at is None
        assert order.status not in (Order.Status.QUEUED, Order.Status.SUBMITTING) or (
            order.next_check_at is not None and order.next_check_at > timezone.now()) or (
            waiting_run)  # a drip-feed run waits for the run before it to end

    @rule(sweep=st.sampled_from(["dispatch", "poll", "refills", "poll_refills", "cancels"]),
          time_passes=st.booleans())
    def sweep(self, sweep: str, time_passes: bool) -> None:
        if time_passes:
            self.make_past_due()
        sweeps: dict[str, Callable[[], object]] = {
            "dispatch": dispatch.dispatch_due, "poll": polling.poll_orders,
            "refills": send_refills, "poll_refills": polling.poll_refills,
            "cancels": send_cancels}
        sweeps[sweep]()

    # --- what upstreams say ------------------------------------------------------------------

    @precondition(lambda self: self.has(sent=True))
    @rule(data=st.data(), status=st.sampled_from(list(UpstreamStatus)), remains=odd_remains,
          start_count=st.one_of(st.none(), st.integers(0, 10**6)),
          how=st.sampled_from(["apply", "batch"]))
    def upstream_says(self, data: st.DataObject, status: UpstreamStatus, remains: int | None,
                      start_count: int | None, how: str) -> None:
        """A handcrafted reply for any order the upstream knows, terminal ones included."""
        order = self.pick(data, self.orders(upstream_id__isnull=False))
        if order is None:
            return
        assert order.upstream_id is not None
        reply = OrderStatus(status=status, charge=Decimal("0.12345"), start_count=start_count,
                            remains=remains, currency="USD")
        if how == "apply":
            changed = order.apply_upstream_status(reply)
        else:
            changed = bool(polling.apply_replies([(order.pk, order.upstream_id)],
                                                 {order.upstream_id: reply}))
        assert not changed or order.pk not in self.terminal

    @precondition(lambda self: self.has(sent=True))
    @rule(data=st.data(),
          status=st.sampled_from(["Completed", "Partial", "Canceled", "In progress"]),
          remains=st.one_of(st.none(), st.integers(0, 2000), st.just("Unknown")))
    def sandbox_moves_an_order(self, data: st.DataObject, status: str,
                               remains: int | str | None) -> None:
        """The upstream's state changes; the next poll reads it."""
        order = self.pick(data, self.orders(upstream_id__isnull=False))
        if order is None:
            return
        assert order.upstream_id is not None
        self.sandbox.force_order(order.upstream_id, status=status, remains=remains)
        self.make_past_due()
        polling.poll_orders()

    # --- customers ask -------------------------------------------------------------------------

    @rule(data=st.data(), own=st.booleans())
    def ask_refill(self, data: st.DataObject, own: bool) -> None:
        order = self.pick(data, self.orders(parent__isnull=True))
        if order is None:
            return
        asker = order.user if own else next(c for c in self.customers if c.pk != order.user_id)
        try:
            refill = request_refill(asker, order.pk)
        except Refusal as exc:
            assert own or exc.message == INCORRECT_ORDER
            return
        assert own and order.status == Order.Status.COMPLETED and refill.order_id == order.pk

    @rule(data=st.data(), own=st.booleans())
    def ask_cancel(self, data: st.DataObject, own: bool) -> None:
        order = self.pick(data, self.orders(parent__isnull=True))
        if order is None:
            return
        asker = order.user if own else next(c for c in self.customers if c.pk != order.user_id)
        try:
            request_cancel(asker, order.pk)
        except Refusal as exc:
            assert own or exc.message == INCORRECT_ORDER
            return
        assert own and (order.status == Order.Status.QUEUED or order.status in Order.POLLED)

    # --- staff ---------------------------------------------------------------------------------

    @rule(data=st.data(), parked_only=st.booleans())
    def staff_fails_and_refunds(self, data: st.DataObject, parked_only: bool) -> None:
        parked = Q(status=Order.Status.NEEDS_ATTENTION) if parked_only else Q()
        order = self.pick(data, self.orders(parked))
        if order is None:
            return
        before = order.status
        done = order.fail_and_refund(self.staff.pk, "not bought upstream")
        assert done == (before in (Order.Status.NEEDS_ATTENTION, Order.Status.QUEUED,
                                   Order.Status.SUBMITTING))

    @precondition(lambda self: self.has(Order.Status.NEEDS_ATTENTION))
    @rule(data=st.data())
    def staff_resends(self, data: st.DataObject) -> None:
        order = self.pick(data, self.orders(status=Order.Status.NEEDS_ATTENTION))
        if order is None:
            return
        route = order.service.routes.first()
        assert route is not None
        assert order.resend(route, self.staff.pk)

    @precondition(lambda self: self.has(Order.Status.PARTIAL))
    @rule(data=st.data(), remains=st.integers(-100, 10**6))
    def staff_refunds_a_partial(self, data: st.DataObject, remains: int) -> None:
        order = self.pick(data, self.orders(status=Order.Status.PARTIAL))
        if order is None:
            return
        already = order.refunded
        if order.refund_partial_by_hand(remains, self.staff.pk):
            assert already == 0 and order.charge > 0

    # --- after every step ------------------------------------------------------------------------

    @invariant()
    def balance_is_the_sum_of_entries_and_never_negative(self) -> None:
        rows = (User.objects.filter(pk__in=self.customer_ids())
                .annotate(total=Coalesce(Sum("ledger_entries__amount"), Decimal(0)))
                .values_list("pk", "balance", "total"))
        for user_id, balance, total in rows:
            assert balance == total >= 0, (user_id, balance, total)
        assert ledger.mismatched_balances() == []

    @invariant()
    def every_order_is_charged_once_and_refunded_at_most_once_within_its_charge(self) -> None:
        orders = {o.pk: o for o in Order.objects.filter(user_id__in=self.customer_ids())}
        entries = list(LedgerEntry.objects.filter(user_id__in=self.customer_ids(),
                                                  order_id__isnull=False))
        kinds = Counter((e.order_id, e.kind) for e in entries)
        assert all(n == 1 for n in kinds.values()), kinds
        charged = {e.order_id: -e.amount for e in entries if e.kind == LedgerEntry.Kind.CHARGE}
        refunded = {e.order_id: e.amount for e in entries if e.kind == LedgerEntry.Kind.REFUND}
        assert set(charged) | set(refunded) <= set(orders)
        shares: defaultdict[int, Decimal] = defaultdict(Decimal)
        for pk, order in orders.items():
            assert refunded.get(pk, Decimal(0)) == order.refunded, order
            assert 0 <= refunded.get(pk, Decimal(0)) <= charged.get(pk, Decimal(0)), order
            if order.parent_id is not None:
                # Runs carry a share of their parent's charge, but the money is the parent's:
                # the ledger charges and refunds the parent only.
                assert pk not in charged and pk not in refunded and order.refunded == 0, order
                shares[order.parent_id] += order.charge
                continue
            assert charged.get(pk, Decimal(0)) == order.charge, order
            if order.status in (Order.Status.CANCELED, Order.Status.FAILED):
                assert order.refunded == order.charge, order  # the whole charge back
            elif order.status != Order.Status.PARTIAL:
                assert order.refunded == 0, order  # live or completed: nothing back
        for parent_id, total in shares.items():
            assert total == orders[parent_id].charge, orders[parent_id]  # shares add up
        # What the preconditions look at until the next step.
        self.snapshot = [(o.status, o.upstream_id) for o in orders.values()]

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        for pk, status in Order.objects.filter(user_id__in=self.customer_ids()).values_list(
                "pk", "status"):
            if pk in self.terminal:
                assert status == self.terminal[pk], (pk, self.terminal[pk], status)
            elif status in Order.TERMINAL:
                self.terminal[pk] = status


@pytest.mark.django_db
def test_money_invariants_hold_whatever_happens(catalog, sandbox, staff_member, settings):
    settings.POLL_FIRST_DELAY = 0

    class Machine(MoneyMachine):
        pass

    Machine.sandbox = sandbox
    Machine.staff = staff_member
    Machine.plain = make_service(catalog)
    Machine.dripfed = make_service(catalog, dripfeed=True)
    assert Machine.plain.refill and Machine.plain.cancel
    run_state_machine_as_test(Machine, settings=MACHINE_SETTINGS)


@pytest.mark.django_db
@pytest.mark.parametrize(("remains", "share"), [(5, Decimal("0.5")), (10, None), (500, None),
                                                 (-3, None)])
def test_a_partial_comments_package_refunds_the_undelivered_comments(catalog, alice, remains,
                                                                     share):
    """A comments package is charged once (charged_units 1), but its remains count comments:
    the refund is the undelivered comments' share, never more than the charge. Remains of
    all, more than all or none of them contradict Partial: held for staff (share None)."""
    service = make_service(catalog, upstream_type="Custom Comments Package")
    order = place_order(alice, service.pk, {"link": "https://instagram.com/p/pack",
                                            "comments": [f"nice {i}" for i in range(10)]})
    assert dispatch.dispatch_one(order.pk)
    order = Order.objects.select_related("service").get(pk=order.pk)
    assert order.charged_units == 1 and order.refund_units() == 10

    assert order.apply_upstream_status(OrderStatus(UpstreamStatus.PARTIAL, None, None, remains,
                                                   "USD"))

    order.refresh_from_db()
    if share is None:
        assert order.remains is None and order.refunded == 0 and order.flagged_at is not None
    else:
        assert order.remains == remains and order.flagged_at is None
        assert order.refunded == quantize_refund(order.charge * share)
    assert ledger.mismatched_balances() == []
