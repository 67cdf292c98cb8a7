"""What the panel does with a verified gateway notification: find the payment, apply it once,
and log it.

Amount, currency and state come only from here (a verified notification, or the gateway's
answer to a status query), never from the page the customer's browser returns to. Every
notification is applied in one transaction with its log row; the payment's compare-and-set
transitions make a replayed, late or out-of-order one harmless.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from payments.gateways import EventKind, GatewayError, Notification, get_gateway
from payments.models import Payment, PaymentEvent

log = logging.getLogger(__name__)

ENDING = {EventKind.FAILED: Payment.State.FAILED, EventKind.EXPIRED: Payment.State.EXPIRED,
          EventKind.CANCELED: Payment.State.CANCELED}
REVERSING = {EventKind.REFUNDED: Payment.State.REFUNDED,
             EventKind.DISPUTED: Payment.State.DISPUTED}
STATUS_QUERY_EVERY = timedelta(seconds=15)


def apply_notification(gateway: str, notification: Notification) -> PaymentEvent:
    """Apply one verified notification to its payment, at most once in effect; returns the
    log row saying what was done."""
    with transaction.atomic():
        payment = _find_payment(gateway, notification)
        if payment is None:
            log.warning("%s notification %s names no payment of ours", gateway,
                        notification.event_id)
            return _record(None, gateway, notification, "unknown payment")
        # The row lock orders concurrent deliveries about one payment: each one after the
        # first sees the state the first one left.
        payment = Payment.objects.select_for_update().select_related("method").get(
            pk=payment.pk)
        outcome = _apply(payment, notification)
        return _record(payment, gateway, notification, outcome)


def _find_payment(gateway: str, n: Notification) -> Payment | None:
    payments = Payment.objects.filter(gateway=gateway)
    if n.gateway_id:
        found = payments.filter(gateway_id=n.gateway_id).first()
        if found is not None:
            return found
    if n.payment_id is not None:
        found = payments.filter(pk=n.payment_id).first()
        # Our id echoed back must agree with the gateway's own id when both are known.
        if found is not None and (not n.gateway_id or found.gateway_id in ("", n.gateway_id)):
            return found
    if n.intent_id:
        return payments.filter(intent_id=n.intent_id).first()
    return None


def _apply(payment: Payment, n: Notification) -> str:
    if n.intent_id and not payment.intent_id:
        Payment.objects.filter(pk=payment.pk).update(intent_id=n.intent_id)
    if n.kind is EventKind.PENDING:
        return "pending" if payment.mark(Payment.State.PENDING) else f"ignored: {payment.state}"
    if n.kind in (EventKind.PAID, EventKind.PARTIALLY_PAID):
        return _paid(payment, n)
    if n.kind in ENDING:
        if payment.mark(ENDING[n.kind]):
            return n.kind.value
        return f"ignored: already {payment.state}"
    if n.kind in REVERSING:
        if payment.state not in Payment.CREDITED:
            return f"ignored: never credited ({payment.state})"
        payment.reversed_by_gateway(REVERSING[n.kind], _reversal_reason(payment, n))
        return f"flagged: {n.kind.value}"
    return "ignored"


def _paid(payment: Payment, n: Notification) -> str:
    problem = _mismatch(payment, n)
    if problem:
        payment.flag(problem)
        return f"flagged: {problem}"
    assert n.amount is not None
    # The customer is credited the share of what they paid that arrived (fee excluded).
    credit = payment.amount if n.amount == payment.total else \
        n.amount * payment.amount / payment.total
    if payment.credit(credit):
        return "credited" if n.kind is EventKind.PAID else f"credited part: {credit:.2f}"
    if payment.state in Payment.CREDITED:
        if n.kind is EventKind.PAID and payment.credited_amount != payment.amount:
            payment.flag(f"paid in full after a partial credit of {payment.credited_amount}")
            return "flagged: more arrived after a partial credit"
        return "duplicate"
    payment.flag(f"money arrived after the payment was {payment.state}")
    return f"flagged: paid while {payment.state}"


def _mismatch(payment: Payment, n: Notification) -> str:
    if n.currency != payment.currency.upper():
        return f"currency {n.currency or '?'} instead of {payment.currency}"
    if n.amount is None or n.amount <= 0:
        return "no amount in a paid notification"
    if n.kind is EventKind.PAID and n.amount != payment.total:
        return f"amount {n.amount} instead of {payment.total}"
    if n.amount > payment.total:
        return f"partial amount {n.amount} above {payment.total}"
    return ""


def _reversal_reason(payment: Payment, n: Notification) -> str:
    what = "refunded" if n.kind is EventKind.REFUNDED else "disputed"
    return (f"{what} at the gateway ({n.amount} {n.currency}) after crediting "
            f"{payment.credited_amount}")


def _record(payment: Payment | None, gateway: str, n: Notification,
            outcome: str) -> PaymentEvent:
    return PaymentEvent.objects.create(
        payment=payment, gateway=gateway, event_id=n.event_id, kind=n.kind.value,
        amount=n.amount, currency=n.currency[:3], outcome=outcome[:100],
        payload=_jsonable(dict(n.payload)))


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(payload, cls=DjangoJSONEncoder, default=str)))


def check_with_gateway(payment: Payment) -> None:
    """Ask the gateway about an open payment (at most every STATUS_QUERY_EVERY), for when a
    notification is late; its answer is applied like a notification."""
    now = timezone.now()
    if not payment.is_open or not payment.gateway_id:
        return
    if not Payment.objects.filter(pk=payment.pk).exclude(
            last_checked_at__gt=now - STATUS_QUERY_EVERY).update(last_checked_at=now):
        return
    gateway = get_gateway(payment.gateway)
    if gateway is None or not gateway.configured():
        return
    try:
        answer = gateway.query_status(payment.gateway_id)
    except GatewayError as exc:
        log.info("status query of payment %s failed: %s", payment.pk, exc)
        return
    if answer is not None:
        apply_notification(payment.gateway, answer)



def expire_stale(max_age: timedelta) -> int:
    """End gateway payments still open after `max_age` (a checkout abandoned, a notification
    never sent): each gateway is asked first where it can answer, and one still open is
    expired. Money arriving later is then flagged for staff, never lost. Manual payments wait
    for staff."""
    cutoff = timezone.now() - max_age
    expired = 0
    stale = Payment.objects.filter(state__in=Payment.OPEN, created_at__lt=cutoff).exclude(
        gateway="manual").order_by("pk")[:200]
    for payment in stale:
        check_with_gateway(payment)
        if payment.mark(Payment.State.EXPIRED):
            expired += 1
            PaymentEvent.objects.create(payment=payment, gateway=payment.gateway,
                                        kind="expired", outcome="expired: no news in time")
    return expired
