"""Refills: a customer asks, the server checks eligibility, a sweep sends them upstream in
batches and polling follows them (orders/polling.py)."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from orders.errors import INCORRECT_ORDER, Refusal
from orders.errors import NOT_ELIGIBLE_REFILL as NOT_ELIGIBLE
from orders.models import Order, OrderEvent, Refill, kick, provider_batches
from panel.models import User
from providers.client import Client, ErrorKind, ProviderError
from providers.models import Provider

log = logging.getLogger(__name__)
# A definite refusal is asked again after this, doubling each time, REFILL_MAX_ATTEMPTS in all.
RETRY_AFTER = timedelta(minutes=2)
# Whole-batch refusals after which a refill is sent on its own.
ALONE_AFTER = 1


# Why an order cannot be refilled now. The API answers every one of them with the same
# NOT_ELIGIBLE text (clients match on it); the order page says which one in words.
REFILL_NOT_OFFERED = "not_offered"
REFILL_NOT_COMPLETED = "not_completed"
REFILL_NO_UPSTREAM_ORDER = "no_upstream_order"
REFILL_WINDOW_OVER = "window_over"
REFILL_PENDING = "pending"
REFILL_RUN = "run"
REFILL_NOT_SUPPORTED = "not_supported"  # the upstream it was bought from has no refill

NO_REFILL_UPSTREAM = "the provider takes no refill requests"


def refill_obstacle(order: Order, active_refill: bool | None = None) -> str:
    """What stops a refill of this order now ("" when nothing does). `active_refill` saves
    the query when the caller already knows whether one is pending."""
    if order.parent_id is not None:
        return REFILL_RUN  # a drip-feed run is the panel's business, not a customer's order
    if not order.service.refill:
        return REFILL_NOT_OFFERED
    if order.status != Order.Status.COMPLETED:
        return REFILL_NOT_COMPLETED
    if order.provider_id is None or order.upstream_id is None:
        return REFILL_NO_UPSTREAM_ORDER  # a drip-feed the panel ran has no single upstream order
    # The upstream service it was bought through must refill too, or the request could only
    # come back Rejected. As for cancels, an order whose route was deleted since is let
    # through: the upstream then decides, and a refill moves no money.
    upstream = order.route.provider_service if order.route else None
    if upstream is not None and not upstream.refill:
        return REFILL_NOT_OFFERED
    if order.provider is not None and not order.provider.can_refill:
        return REFILL_NOT_SUPPORTED  # it could only be refused, or never be followed
    deadline = order.service.refill_deadline(order.finished_at)
    if deadline is not None and timezone.now() > deadline:
        return REFILL_WINDOW_OVER
    if active_refill is None:
        active_refill = order.refills.filter(status__in=Refill.ACTIVE).exists()
    if active_refill:
        return REFILL_PENDING
    return ""


def refill_refusal(order: Order, active_refill: bool | None = None) -> str:
    """The API's answer: why this order cannot be refilled now, or "" when it can."""
    return NOT_ELIGIBLE if refill_obstacle(order, active_refill) else ""


def request_refill(user: User, order_id: object) -> Refill:
    order = Order.objects.for_customer(user.pk).find(order_id)
    if order is None:
        raise Refusal(INCORRECT_ORDER)
    refusal = refill_refusal(order)
    if refusal:
        raise Refusal(refusal)
    assert order.provider_id is not None
    try:
        with transaction.atomic():
            refill = Refill.objects.create(order=order, user=user, provider_id=order.provider_id,
                                           next_check_at=timezone.now())
            order.log("refill_requested", f"refill #{refill.pk}", user.pk)
            transaction.on_commit(_kick, robust=True)
    except IntegrityError:
        raise Refusal(NOT_ELIGIBLE) from None  # one became pending since the check above
    return refill


def _kick() -> None:
    kick("orders.tasks.send_refills")


def claim_queued(limit: int = 500) -> list[tuple[Any, ...]]:
    """(refill id, provider id, order id, attempts) of queued refills, now SUBMITTING."""
    now = timezone.now()
    return Refill.objects.filter(status=Refill.Status.QUEUED, next_check_at__lte=now).claim(
        limit, "provider_id", "order_id", "attempts", status=Refill.Status.SUBMITTING,
        submitted_at=now)


@dataclass
class _Item:
    refill_id: int
    order_id: int
    upstream_order_id: int
    attempts: int  # definite refusals so far


def send_refills() -> int:
    rows = claim_queued()
    # The upstream order ids, in one query for the sweep (a join in the claim would lock
    # the orders too).
    upstream_ids = dict(Order.objects.filter(pk__in=[row[2] for row in rows])
                        .values_list("pk", "upstream_id"))
    for provider, batch in provider_batches(rows):
        items = [_Item(pk, order_id, upstream_ids.get(order_id) or 0, attempts)
                 for pk, _, order_id, attempts in batch]
        outcome = _Outcome(provider)
        if provider.can_refill:
            _send(provider.client(), items, outcome)
        else:
            # Asked for before the panel learned it has none: they end here, unsent.
            for item in items:
                outcome.reject(item, NO_REFILL_UPSTREAM, flag="")
        outcome.save()
    return len(rows)


def _send(client: Client, items: list[_Item], outcome: _Outcome) -> None:
    # A refill whose batch was refused as a whole goes alone from then on, in the
    # single-id form: an upstream that takes no lists, or one bad id that spoils a list,
    # then cannot hold the others up.
    together = [i for i in items if i.attempts < ALONE_AFTER]
    if together:
        _send_together(client, together, outcome)
    for item in items:
        if item.attempts < ALONE_AFTER:
            continue
        if outcome.provider.can_refill:
            _send_alone(client, item, outcome)
        else:  # learned from the request before: no use asking again
            outcome.reject(item, NO_REFILL_UPSTREAM, flag="")


def _send_together(client: Client, items: list[_Item], outcome: _Outcome) -> None:
    try:
        results = client.refills([item.upstream_order_id for item in items])
    except ProviderError as exc:
        outcome.provider.refused_key(exc, "a refill request")
        for item in items:
            outcome.add(item, exc)
        return
    missing = ProviderError(ErrorKind.BAD_REPLY, "no answer for this refill", definite=False)
    for item in items:
        result = results.get(item.upstream_order_id, missing)
        if isinstance(result, ProviderError) and result.definite:
            # The upstream answered for this refill alone: it will not do it.
            outcome.reject(item, result.message, flag="")
        else:
            outcome.add(item, result)


def _send_alone(client: Client, item: _Item, outcome: _Outcome) -> None:
    try:
        outcome.add(item, client.refill(item.upstream_order_id))
    except ProviderError as exc:
        outcome.add(item, exc)


_Group = tuple[str, tuple[tuple[str, Any], ...]]


class _Outcome:
    """What one batch of refills came to, written with one UPDATE per kind of outcome and
    message (and one for every accepted refill), compare-and-set on SUBMITTING, with the
    events in one INSERT."""

    def __init__(self, provider: Provider) -> None:
        self.provider, self.now = provider, timezone.now()
        self.accepted: dict[int, int] = {}
        self.updates: dict[_Group, list[int]] = defaultdict(list)
        self.events: list[OrderEvent] = []

    def add(self, item: _Item, result: int | ProviderError) -> None:
        if isinstance(result, int):
            self.accepted[item.refill_id] = result
        elif self.provider.learn_unsupported("refill", result):
            self.reject(item, f"{NO_REFILL_UPSTREAM} ({result.message})", flag="")
        elif result.definite:  # nothing was created upstream: safe to ask again, within bounds
            self._refused(item, result.message)
        else:
            # The upstream may have created it: a resend could refill twice.
            why = f"outcome unknown: {result.message}"
            reason = f"refill #{item.refill_id} sent to {self.provider}, {why}"
            self._update(item, "refill_flagged", reason, status=Refill.Status.NEEDS_ATTENTION,
                         error=why[:1000], flagged_at=self.now, flag_reason=reason)

    def _refused(self, item: _Item, why: str) -> None:
        attempts = item.attempts + 1
        if attempts >= settings.REFILL_MAX_ATTEMPTS:
            self.reject(item, why, flag=f"refused by {self.provider} {attempts} attempts "
                                         f"in a row: {why}", attempts=attempts)
            return
        self._update(item, "", "", status=Refill.Status.QUEUED, attempts=attempts,
                     error=why[:1000],
                     next_check_at=self.now + RETRY_AFTER * 2 ** (attempts - 1))

    def reject(self, item: _Item, why: str, *, flag: str, attempts: int | None = None) -> None:
        """Rejected, as the customer will see it, with the reason written on the refill and
        the order; `flag` says why staff should look, when they should."""
        fields: dict[str, Any] = {"status": Refill.Status.REJECTED, "error": why[:1000],
                                  "finished_at": self.now, "next_check_at": None}
        if attempts is not None:
            fields["attempts"] = attempts
        if flag:
            fields.update(flagged_at=self.now, flag_reason=flag)
        self._update(item, "refill_rejected", f"refill #{item.refill_id} rejected: {why}",
                     **fields)

    def _update(self, item: _Item, kind: str, message: str, **fields: Any) -> None:
        self.updates[(kind, tuple(sorted(fields.items())))].append(item.refill_id)
        if kind:
            self.events.append(OrderEvent(order_id=item.order_id, kind=kind, message=message))

    def save(self) -> None:
        submitting = Refill.objects.filter(status=Refill.Status.SUBMITTING)
        with transaction.atomic():
            if self.accepted:
                upstream_id = Case(*(When(pk=pk, then=Value(upstream))
                                     for pk, upstream in self.accepted.items()),
                                   output_field=models.BigIntegerField())
                submitting.filter(pk__in=list(self.accepted)).update(
                    status=Refill.Status.PENDING, upstream_id=upstream_id, error="",
                    next_check_at=self.now, last_progress_at=self.now)
            for (_, fields), pks in self.updates.items():
                submitting.filter(pk__in=pks).update(**dict(fields))
            OrderEvent.objects.bulk_create(self.events)
