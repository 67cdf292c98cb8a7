"""The staff's actions, each one transaction with its audit row (desk.models.audit).

Every function returns whether the action happened: False when the order or refill moved on
since the page showed it (the model methods compare and set), and then nothing is written.
The reason is required wherever money moves or a resend may buy twice; the views ask for it."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from desk.models import audit
from orders.models import Order, Refill, Route, kick
from panel.models import User


def _resolved(order: Order) -> None:
    """The action settled what the flag asked for: off the attention queue."""
    Order.objects.filter(pk=order.pk).update(flagged_at=None, flag_reason="")


def resend(actor: User, order: Order, route: Route, reason: str) -> bool:
    with transaction.atomic():
        if not reason.strip() or not order.resend(route, actor.pk):
            return False
        _resolved(order)
        audit(actor, "resend", reason, order=order, route=str(route),
              provider=str(route.provider))
    return True


def attach_upstream_id(actor: User, order: Order, upstream_id: int, route: Route,
                       reason: str = "") -> bool:
    with transaction.atomic():
        if not order.attach_upstream_id(upstream_id, route, actor.pk):
            return False
        audit(actor, "attach_upstream_id", reason, order=order, upstream_id=upstream_id,
              provider=str(route.provider))
    return True


def fail_and_refund(actor: User, order: Order, reason: str) -> bool:
    with transaction.atomic():
        if not reason.strip() or not order.fail_and_refund(actor.pk, reason):
            return False
        _resolved(order)
        audit(actor, "fail_and_refund", reason, order=order, refunded=str(order.charge))
    return True


def settle_partial_by_remains(actor: User, order: Order, remains: int, reason: str) -> bool:
    with transaction.atomic():
        if not reason.strip() or not order.refund_partial_by_hand(remains, actor.pk):
            return False
        _resolved(order)
        audit(actor, "settle_partial", reason, order=order, remains=remains,
              refunded=str(order.refunded))
    return True


def settle_partial_by_amount(actor: User, order: Order, amount: Decimal, reason: str) -> bool:
    with transaction.atomic():
        if not reason.strip() or not order.refund_amount_by_hand(amount, actor.pk, reason):
            return False
        _resolved(order)
        audit(actor, "settle_partial", reason, order=order, amount=str(amount),
              refunded=str(order.refunded))
    return True


def mark_completed(actor: User, order: Order, reason: str) -> bool:
    with transaction.atomic():
        if not order.mark_completed(actor.pk, reason):
            return False
        audit(actor, "mark_completed", reason, order=order)
    return True


def dismiss_flag(actor: User, order: Order, reason: str) -> bool:
    with transaction.atomic():
        flag = order.flag_reason
        if not order.dismiss_flag(actor.pk, reason):
            return False
        audit(actor, "dismiss_flag", reason, order=order, flag=flag)
    return True


# --- cancels ------------------------------------------------------------------------------

def retry_cancel(actor: User, order: Order, reason: str = "") -> bool:
    with transaction.atomic():
        if not order.retry_cancel(actor.pk):
            return False
        audit(actor, "retry_cancel", reason, order=order)
    return True


def refuse_cancel(actor: User, order: Order, reason: str) -> bool:
    with transaction.atomic():
        if not reason.strip() or not order.refuse_cancel(actor.pk, reason):
            return False
        audit(actor, "refuse_cancel", reason, order=order)
    return True


def cancel_by_hand(actor: User, order: Order, reason: str) -> bool:
    with transaction.atomic():
        if not order.cancel_by_hand(actor.pk, reason):
            return False
        audit(actor, "cancel_by_hand", reason, order=order, refunded=str(order.refunded))
    return True


# --- refills ------------------------------------------------------------------------------

def resend_refill(actor: User, refill: Refill, reason: str = "") -> bool:
    with transaction.atomic():
        if not refill.send_again(actor.pk):
            return False
        audit(actor, "resend_refill", reason, order=refill.order, refill=refill.pk)
    transaction.on_commit(_kick_refills, robust=True)
    return True


def _kick_refills() -> None:
    kick("orders.tasks.send_refills")


def reject_refill(actor: User, refill: Refill, reason: str) -> bool:
    with transaction.atomic():
        if not refill.reject_by_hand(actor.pk, reason):
            return False
        audit(actor, "reject_refill", reason, order=refill.order, refill=refill.pk)
    return True


def mark_refill_done(actor: User, refill: Refill, reason: str = "") -> bool:
    with transaction.atomic():
        if not refill.mark_done_by_hand(actor.pk, reason):
            return False
        audit(actor, "mark_refill_done", reason, order=refill.order, refill=refill.pk)
    return True


def dismiss_refill_flag(actor: User, refill: Refill, reason: str) -> bool:
    with transaction.atomic():
        flag = refill.flag_reason
        if not refill.dismiss_flag(actor.pk, reason):
            return False
        audit(actor, "dismiss_refill_flag", reason, order=refill.order, refill=refill.pk,
              flag=flag)
    return True
