"""The money invariants bench/chaos.py and bench/load.py check once the panel has settled.

Each check returns a list of breaches (empty when it holds), so a run can print them all and
exit non-zero on any.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum


def settle(limit: float, tick: Callable[[], object] = lambda: None
           ) -> tuple[float, dict[str, int]]:
    """Wait until every order is terminal or parked, calling `tick` every second;
    (seconds waited, states left)."""
    from orders.models import Order

    started = time.monotonic()
    while True:
        tick()
        left = dict(_moving(Order.objects.all()).values_list("status")
                    .annotate(n=Count("id")).values_list("status", "n"))
        if not left or time.monotonic() - started > limit:
            return time.monotonic() - started, left
        time.sleep(1)


def _moving(orders: Any) -> Any:
    """The orders that are not at rest: neither terminal nor parked, nor a drip-feed the
    panel runs itself that waits on a parked run (its parent, and the runs after it, wait
    for staff with the money held)."""
    from orders.models import Order

    S = Order.Status
    parked_run = Order.objects.filter(status=S.NEEDS_ATTENTION, parent__isnull=False)
    return (orders.exclude(status__in=[*Order.TERMINAL, S.NEEDS_ATTENTION])
            .exclude(parent__isnull=True, pk__in=parked_run.values("parent_id"))
            .exclude(parent__isnull=False, status=S.QUEUED, next_check_at__isnull=True,
                     parent_id__in=parked_run.values("parent_id")))


def check_all(sandbox_adds: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Every invariant; (breaches, figures)."""
    breaches: list[str] = []
    figures: dict[str, Any] = {}
    for check in (ledger_matches, one_charge_one_refund, totals_add_up, orders_at_rest):
        breaches += check(figures)
    breaches += nothing_bought_twice(sandbox_adds, figures)
    return breaches, figures


def ledger_matches(figures: dict[str, Any]) -> list[str]:
    """check_ledger: every balance equals the sum of its entries."""
    from panel.ledger import mismatched_balances

    return [f"user {u} ({name}): balance {b} != sum of entries {s}"
            for u, name, b, s in mismatched_balances()]


def one_charge_one_refund(figures: dict[str, Any]) -> list[str]:
    """Per order at most one charge and one refund, the refund never above the charge."""
    from panel.models import LedgerEntry

    rows = (LedgerEntry.objects.filter(order_id__isnull=False).values("order_id")
            .annotate(charges=Count("id", filter=Q(kind="charge")),
                      refunds=Count("id", filter=Q(kind="refund")),
                      charged=Sum("amount", filter=Q(kind="charge")),
                      refunded=Sum("amount", filter=Q(kind="refund"))))
    breaches = []
    for row in rows:
        if row["charges"] > 1 or row["refunds"] > 1:
            breaches.append(f"order {row['order_id']}: {row['charges']} charges, "
                            f"{row['refunds']} refunds")
        if row["refunds"] and (not row["charges"] or row["refunded"] > -row["charged"]):
            breaches.append(f"order {row['order_id']}: refund {row['refunded']} exceeds "
                            f"charge {row['charged']}")
    return breaches


def totals_add_up(figures: dict[str, Any]) -> list[str]:
    """Σ deposits − Σ charges + Σ refunds ± adjustments = Σ balances."""
    from panel.models import LedgerEntry, User

    by_kind = {kind: total or Decimal(0) for kind, total in
               LedgerEntry.objects.values_list("kind").annotate(t=Sum("amount"))
               .values_list("kind", "t")}
    balances = User.objects.aggregate(t=Sum("balance"))["t"] or Decimal(0)
    figures["ledger"] = {k: str(v) for k, v in sorted(by_kind.items())}
    figures["balances"] = str(balances)
    if sum(by_kind.values(), Decimal(0)) != balances:
        return [f"ledger totals {by_kind} do not add up to the balances {balances}"]
    return []


def orders_at_rest(figures: dict[str, Any]) -> list[str]:
    """Every order terminal with its money settled, or parked with its money held."""
    from orders.models import Order
    from panel.models import LedgerEntry

    money: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for order_id, kind, amount in LedgerEntry.objects.filter(
            order_id__isnull=False).values_list("order_id", "kind", "amount"):
        if order_id is not None:
            money[order_id][kind] = amount
    states: Counter[str] = Counter()
    breaches = []
    S = Order.Status
    moving = set(_moving(Order.objects.filter(parent__isnull=True)).values_list("pk",
                                                                             flat=True))
    for order in Order.objects.filter(parent__isnull=True).only(
            "pk", "status", "charge", "refunded"):
        waits = order.status == S.IN_PROGRESS and order.pk not in moving
        states["in_progress, a run parked" if waits else order.status] += 1
        paid = money[order.pk]
        charged = -paid.get("charge", Decimal(0))
        refund = paid.get("refund", Decimal(0))
        if charged != order.charge:
            breaches.append(f"order {order.pk} ({order.status}): charged {charged}, "
                            f"its price {order.charge}")
        if refund != order.refunded:
            breaches.append(f"order {order.pk}: refund entry {refund}, recorded "
                            f"{order.refunded}")
        if order.status in (S.FAILED, S.CANCELED) and refund != charged:
            breaches.append(f"order {order.pk} {order.status}: refunded {refund} of {charged}")
        elif (order.status in (S.NEEDS_ATTENTION, S.COMPLETED) or waits) and refund:
            breaches.append(f"order {order.pk} {order.status}: refunded {refund}, should be "
                            "held")
        elif waits:
            pass  # a drip-feed the panel runs, waiting on a parked run: staff's to settle
        elif order.status not in (*Order.TERMINAL, S.NEEDS_ATTENTION):
            breaches.append(f"order {order.pk}: still {order.status}")
    figures["orders by state"] = dict(sorted(states.items()))
    figures["parked"] = states[S.NEEDS_ATTENTION] + states["in_progress, a run parked"]
    return breaches


def nothing_bought_twice(adds: list[dict[str, Any]], figures: dict[str, Any]) -> list[str]:
    """From the sandbox's own log: no more successful buys for a link than orders the panel
    had to send for it (an order, or each run of one the panel drip-feeds itself), and every
    upstream id the panel recorded is one of those buys, on one order only."""
    from orders.models import Order

    bought: Counter[str] = Counter()
    upstream_ids: set[int] = set()
    for add in adds:
        if add["order"] is not None:
            bought[add["params"].get("link") or add["params"].get("username", "")] += 1
            upstream_ids.add(int(add["order"]))
    sendable: Counter[str] = Counter()
    recorded: Counter[int] = Counter()
    for link, upstream_id, runs_kids in (Order.objects.annotate(kids=Count("runs_set"))
                                         .values_list("link", "upstream_id", "kids")):
        if not runs_kids:
            sendable[link] += 1
        if upstream_id is not None:
            recorded[upstream_id] += 1
    breaches = [f"{link}: bought {n} times upstream for {sendable[link]} order(s)"
                for link, n in bought.items() if n > sendable[link]]
    breaches += [f"upstream order {u} recorded on {n} orders" for u, n in recorded.items()
                 if n > 1]
    breaches += [f"upstream order {u} recorded but never bought" for u in recorded
                 if u not in upstream_ids]
    figures["upstream buys"] = sum(bought.values())
    figures["upstream adds (all attempts)"] = len(adds)
    figures["bought but unrecorded (parked unknowns that went through)"] = (
        len(upstream_ids - set(recorded)))
    return breaches
