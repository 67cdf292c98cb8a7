"""Staff actions on a customer's account: balance adjustments, discount and custom rates,
suspension, API keys. Each is one transaction with its audit row (desk.models.audit), so
the change and the record of who made it and why commit together or not at all."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from desk.models import audit
from orders.models import CustomRate, Service
from panel import ledger
from panel.models import ApiKey, LedgerEntry, User


def adjust_balance(actor: User, customer: User, amount: Decimal, reason: str) -> LedgerEntry:
    """Add (or, negative, take) money with the reason the ledger entry keeps. Raises
    ledger.InsufficientFunds when a deduction would overdraw."""
    with transaction.atomic():
        entry = ledger.adjust(customer.pk, amount, actor_id=actor.pk, reason=reason)
        audit(actor, "balance_adjusted", reason, customer=customer, amount=str(entry.amount),
              balance_after=str(entry.balance_after), ledger_entry=entry.pk)
    return entry


def set_discount(actor: User, customer: User, percent: Decimal, reason: str) -> None:
    with transaction.atomic():
        before = User.objects.select_for_update().values_list(
            "discount_percent", flat=True).get(pk=customer.pk)
        User.objects.filter(pk=customer.pk).update(discount_percent=percent)
        customer.discount_percent = percent
        audit(actor, "discount_set", reason, customer=customer, before=str(before),
              after=str(percent))


def set_custom_rate(actor: User, customer: User, service: Service, rate: Decimal,
                    reason: str) -> CustomRate:
    with transaction.atomic():
        before = CustomRate.objects.filter(user=customer, service=service).values_list(
            "rate", flat=True).first()
        custom, _ = CustomRate.objects.update_or_create(user=customer, service=service,
                                                        defaults={"rate": rate})
        audit(actor, "custom_rate_set", reason, customer=customer, service=service.pk,
              before=None if before is None else str(before), after=str(rate))
    return custom


def remove_custom_rate(actor: User, customer: User, custom: CustomRate, reason: str) -> None:
    with transaction.atomic():
        deleted, _ = CustomRate.objects.filter(pk=custom.pk, user=customer).delete()
        if deleted:
            audit(actor, "custom_rate_removed", reason, customer=customer,
                  service=custom.service_id, before=str(custom.rate))


def suspend(actor: User, customer: User, reason: str) -> bool:
    """Refuse the customer's logins and API keys (both check is_active: the login backend,
    the session on its next request and ApiKeyQuerySet.active). False if already."""
    return _set_active(actor, customer, False, "customer_suspended", reason)


def reinstate(actor: User, customer: User, reason: str) -> bool:
    return _set_active(actor, customer, True, "customer_reinstated", reason)


def _set_active(actor: User, customer: User, active: bool, action: str, reason: str) -> bool:
    with transaction.atomic():
        if not User.objects.filter(pk=customer.pk, is_active=not active).update(
                is_active=active):
            return False
        customer.is_active = active
        audit(actor, action, reason, customer=customer)
    return True


def revoke_key(actor: User, key: ApiKey, reason: str) -> bool:
    with transaction.atomic():
        if not ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
                revoked_at=timezone.now()):
            return False
        audit(actor, "api_key_revoked", reason, customer=User(pk=key.user_id), key=key.pk,
              prefix=key.prefix)
    return True
