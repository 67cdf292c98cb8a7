"""Staff decisions about payments: approve or reject a manual payment (or an open one a
gateway's message flagged), settle a flagged one. Each is one transaction with its audit row
around the tested model methods (Payment.approve, reject, settle_flag), so the credit or the
adjustment, the payment's own event and the desk's record of who decided and why commit
together.

Every function returns whether the decision was taken: False when the payment moved on
since the page showed it (another staff member, a late notification), and then nothing is
written. The payment's row is locked first, so two staff settling one flag at the same time
cannot both apply an adjustment."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from desk.models import audit
from panel.models import User
from payments.models import Payment


def _locked(payment: Payment) -> Payment:
    return Payment.objects.select_for_update().select_related("method").get(pk=payment.pk)


def awaits_decision(payment: Payment) -> bool:
    """Open and for staff to decide: a manual payment, or one a gateway's message flagged
    (e.g. a mismatched amount). Other open payments wait for their gateway, not for staff."""
    return payment.awaits_staff


def approve(actor: User, payment: Payment, reason: str, amount: Decimal | None = None) -> bool:
    """Credit the payment once: `amount` (at most what was asked; the bonus only on the
    whole amount) or, without one, what was asked."""
    if not reason.strip():
        return False
    with transaction.atomic():
        locked = _locked(payment)
        if not awaits_decision(locked) or not locked.approve(actor, amount, note=reason):
            return False
        audit(actor, "payment_approved", reason, customer=User(pk=locked.user_id),
              payment=locked.pk, amount=str(locked.credited_amount), asked=str(locked.amount))
    return True


def reject(actor: User, payment: Payment, reason: str) -> bool:
    """No such money arrived: the payment fails with `reason`, nothing is credited."""
    if not reason.strip():
        return False
    with transaction.atomic():
        locked = _locked(payment)
        if not awaits_decision(locked) or not locked.reject(actor, reason):
            return False
        audit(actor, "payment_rejected", reason, customer=User(pk=locked.user_id),
              payment=locked.pk, asked=str(locked.amount))
    return True


def settle(actor: User, payment: Payment, reason: str,
           adjustment: Decimal | None = None) -> bool:
    """Clear the payment's flag, with an optional signed ledger adjustment carrying the
    reason (e.g. taking back a disputed payment). Raises ledger.InsufficientFunds, and
    writes nothing, when a deduction would overdraw."""
    if not reason.strip():
        return False
    with transaction.atomic():
        locked = _locked(payment)
        if not locked.flagged:
            return False
        balance_before = User.objects.values_list("balance", flat=True).get(pk=locked.user_id)
        locked.settle_flag(actor, reason, adjustment=adjustment or None)
        audit(actor, "payment_flag_settled", reason, customer=User(pk=locked.user_id),
              payment=locked.pk, flag_reason=locked.flag_reason,
              balance_before=str(balance_before),
              amount=str(adjustment) if adjustment else None)
    return True
