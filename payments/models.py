"""Payments: the methods admins offer, one Payment per attempt, and the log of what gateways
said about each.

A payment is credited at most once, whatever a gateway sends, how often and in what order:
its state changes are compare-and-set (one row changes, or nothing happens), and the
ledger's partial unique indexes refuse a second deposit or bonus for one payment, in the same
transaction as the move to `paid`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from panel import ledger
from panel.models import User
from panel.money import MONEY_DIGITS, MONEY_PLACES, ZERO, quantize_refund

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


class GatewayName(models.TextChoices):
    STRIPE = "stripe", _("Stripe Checkout (cards)")
    NOWPAYMENTS = "nowpayments", _("NOWPayments (crypto)")
    MANUAL = "manual", _("Manual (staff approve)")
    DEMO = "demo", _("Demo gateway (no real money)")


def percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    """A fee is what the gateway is paid: rounded to the cent as gateways charge."""
    return (amount * percent / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)


class PaymentMethodQuerySet(models.QuerySet["PaymentMethod"]):
    def offered_to(self, user: User) -> PaymentMethodQuerySet:
        """Enabled methods in the admin's order, whose gateway is configured, without those
        kept from customers who never paid before."""
        from payments.gateways import get_gateway

        methods = self.filter(enabled=True).order_by("sort_order", "pk")
        if not Payment.objects.filter(user=user, state__in=Payment.CREDITED).exists():
            methods = methods.filter(new_customers_allowed=True)
        ready = [m.pk for m in methods if (g := get_gateway(m.gateway)) and g.configured()]
        return methods.filter(pk__in=ready)


class PaymentMethod(models.Model):
    """A way to add funds, as an admin configured it."""

    name = models.CharField(_("name"), max_length=100)
    gateway = models.CharField(_("gateway"), max_length=20, choices=GatewayName.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    sort_order = models.PositiveIntegerField(_("order"), default=0,
                                             help_text=_("Tabs are shown lowest first."))
    min_amount = models.DecimalField(_("minimum"), max_digits=12, decimal_places=2,
                                     default=Decimal("1.00"))
    max_amount = models.DecimalField(_("maximum"), max_digits=12, decimal_places=2,
                                     default=Decimal("10000.00"))
    fee_percent = models.DecimalField(
        _("fee %"), max_digits=5, decimal_places=2, default=ZERO,
        help_text=_("Added on top of the amount: the customer pays amount + fee and is "
                    "credited the amount."))
    bonus_percent = models.DecimalField(_("bonus %"), max_digits=5, decimal_places=2,
                                        default=ZERO)
    bonus_threshold = models.DecimalField(
        _("bonus from"), max_digits=12, decimal_places=2, default=ZERO,
        help_text=_("The bonus applies to amounts of at least this much."))
    new_customers_allowed = models.BooleanField(
        _("allowed for new customers"), default=True,
        help_text=_("Off: only customers with an earlier paid payment see this method."))
    instructions = models.TextField(
        _("instructions"), blank=True,
        help_text=_("Shown to the customer, e.g. the bank account to transfer to (manual "
                    "methods)."))

    objects = PaymentMethodQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "pk"]
        verbose_name = _("payment method")
        constraints = [
            models.CheckConstraint(condition=models.Q(min_amount__gt=0)
                                   & models.Q(max_amount__gte=models.F("min_amount")),
                                   name="payment_method_min_max"),
            models.CheckConstraint(condition=models.Q(fee_percent__gte=0, fee_percent__lt=100,
                                                      bonus_percent__gte=0),
                                   name="payment_method_percents"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_manual(self) -> bool:
        return self.gateway == GatewayName.MANUAL

    def fee_for(self, amount: Decimal) -> Decimal:
        return percent_of(amount, self.fee_percent)

    def bonus_for(self, amount: Decimal) -> Decimal:
        if self.bonus_percent <= 0 or amount < self.bonus_threshold:
            return ZERO
        return quantize_refund(amount * self.bonus_percent / HUNDRED)

    def amount_error(self, amount: Decimal) -> str:
        """Why this amount cannot be paid with this method, or ''."""
        if amount < self.min_amount:
            return str(_("The minimum for this method is %s.") % self.min_amount)
        if amount > self.max_amount:
            return str(_("The maximum for this method is %s.") % self.max_amount)
        return ""


def awaiting_review_q() -> models.Q:
    """Manual payments waiting for staff to find the money (or not)."""
    return models.Q(gateway=GatewayName.MANUAL, state__in=Payment.OPEN)


def flagged_q() -> models.Q:
    """Flagged payments other than the manual ones waiting for review: a refund or dispute
    after crediting, a mismatched amount or currency, money arriving late."""
    return models.Q(flagged=True) & ~awaiting_review_q()


class PaymentQuerySet(models.QuerySet["Payment"]):
    def awaiting_review(self) -> PaymentQuerySet:
        return self.filter(awaiting_review_q())

    def flagged_for_staff(self) -> PaymentQuerySet:
        return self.filter(flagged_q())

    def needing_staff(self) -> PaymentQuerySet:
        """What the desk's navigation counts: to review, or flagged."""
        return self.filter(awaiting_review_q() | models.Q(flagged=True))


class Payment(models.Model):
    """One attempt to add funds. `amount` is what it credits, `fee` what the gateway is paid
    on top; `credited_amount` is what was credited (less than `amount` after a partial
    payment)."""

    class State(models.TextChoices):
        CREATED = "created", _("Created")
        PENDING = "pending", _("Pending")
        PAID = "paid", _("Paid")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")
        CANCELED = "canceled", _("Canceled")
        REFUNDED = "refunded", _("Refunded")
        DISPUTED = "disputed", _("Disputed")

    OPEN = (State.CREATED, State.PENDING)
    CREDITED = (State.PAID, State.REFUNDED, State.DISPUTED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="payments")
    method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="payments")
    gateway = models.CharField(max_length=20, choices=GatewayName.choices)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    fee = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
                              default=ZERO)
    bonus = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
                                default=ZERO)
    currency = models.CharField(max_length=3)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CREATED)
    gateway_id = models.CharField(max_length=255, blank=True)
    intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    customer_reference = models.CharField(max_length=200, blank=True)
    credited_amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
                                          null=True, blank=True)
    # Set when staff must look: a refund or dispute after crediting, a mismatched amount or
    # currency, money arriving after the payment had ended, a manual payment to review.
    flagged = models.BooleanField(default=False, db_index=True)
    flag_reason = models.TextField(blank=True)
    flag_balance = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
                                       null=True, blank=True,
                                       help_text="The customer's balance when it was flagged.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)

    objects = PaymentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_id"],
                                    condition=~models.Q(gateway_id=""),
                                    name="payment_one_per_gateway_id"),
            models.CheckConstraint(condition=models.Q(amount__gt=0, fee__gte=0, bonus__gte=0),
                                   name="payment_amounts_not_negative"),
        ]

    def __str__(self) -> str:
        return f"payment {self.pk} ({self.state})"

    @property
    def total(self) -> Decimal:
        """What the customer pays the gateway."""
        return self.amount + self.fee

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN

    @property
    def awaits_staff(self) -> bool:
        """Open and for staff to decide: a manual payment, or one a gateway's message flagged
        (e.g. a mismatched amount). Other open payments wait for their gateway, not staff."""
        return self.is_open and (self.gateway == GatewayName.MANUAL or self.flagged)

    def _transition(self, from_states: tuple[str, ...], to: str, **fields: Any) -> bool:
        """Compare-and-set: move from one of `from_states` to `to`, or change nothing."""
        now = timezone.now()
        changed = Payment.objects.filter(pk=self.pk, state__in=from_states).update(
            state=to, updated_at=now, **fields)
        if changed:
            self.state, self.updated_at = to, now
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(changed)

    def mark(self, to: str) -> bool:
        """An open payment ends (failed, expired, canceled) or waits (pending)."""
        sources = (self.State.CREATED,) if to == self.State.PENDING else self.OPEN
        return self._transition(sources, to)

    def credit(self, amount: Decimal, *, actor: User | None = None) -> bool:
        """Move an open payment to paid and credit `amount` (and the bonus, on a full
        payment), in one transaction; False, with nothing written, when it was not open."""
        amount = quantize_refund(amount)
        with transaction.atomic():
            if amount <= 0 or not self._transition(
                    self.OPEN, self.State.PAID, credited_amount=amount, paid_at=timezone.now()):
                return False
            memo = f"Payment #{self.pk} ({self.method.name})"
            ledger.deposit(self.user_id, amount, payment_id=self.pk, memo=memo,
                           actor_id=actor.pk if actor else None)
            if self.bonus > 0 and amount >= self.amount:
                ledger.bonus(self.user_id, self.bonus, payment_id=self.pk,
                             memo=f"Bonus on payment #{self.pk}")
        return True

    def flag(self, reason: str) -> None:
        """Put the payment in front of staff, with the customer's balance as it is now."""
        balance = User.objects.values_list("balance", flat=True).get(pk=self.user_id)
        if self.flagged and f"{reason}\n" in self.flag_reason:
            return  # a replay of what staff were already told
        Payment.objects.filter(pk=self.pk).update(
            flagged=True, flag_balance=balance, updated_at=timezone.now(),
            flag_reason=Concat(models.F("flag_reason"), models.Value(f"{reason}\n"),
                               output_field=models.TextField()))
        self.refresh_from_db(fields=["flagged", "flag_reason", "flag_balance", "updated_at"])

    def reversed_by_gateway(self, to: str, reason: str) -> bool:
        """A refund or dispute of credited money: the balance is left alone; staff decide."""
        moved = self._transition((self.State.PAID,), to)
        if self.state in self.CREDITED:
            self.flag(reason)
        return moved

    # --- what staff do (the staff desk calls these, desk/payments.py; the admin's actions too) -

    def approve(self, actor: User, amount: Decimal | None = None, note: str = "") -> bool:
        """Staff saw the money arrive: credit it once (the whole amount unless told less)."""
        with transaction.atomic():
            credited = self.credit(amount if amount is not None else self.amount, actor=actor)
            if credited:
                self._clear_flag()
            self._audit(actor, "approved" if credited else "approve refused: not open", note)
        return credited

    def reject(self, actor: User, reason: str) -> bool:
        """Staff found no such money: the payment fails, nothing is credited."""
        with transaction.atomic():
            rejected = self._transition(self.OPEN, self.State.FAILED, error=reason)
            if rejected:
                self._clear_flag()
            self._audit(actor, "rejected" if rejected else "reject refused: not open", reason)
        return rejected

    def settle_flag(self, actor: User, note: str, adjustment: Decimal | None = None) -> None:
        """Staff decided about a flagged payment: optionally correct the balance (a signed
        ledger adjustment, e.g. taking back a refunded payment), and clear the flag."""
        if not note.strip():
            raise ValueError("settling a flag needs a note")
        with transaction.atomic():
            if adjustment:
                ledger.adjust(self.user_id, adjustment, actor_id=actor.pk,
                              reason=f"Payment #{self.pk}: {note.strip()}")
            self._clear_flag()
            self._audit(actor, "flag settled", f"{note.strip()} (adjustment {adjustment or 0})")

    def _clear_flag(self) -> None:
        Payment.objects.filter(pk=self.pk).update(flagged=False, updated_at=timezone.now())
        self.flagged = False

    def _audit(self, actor: User, outcome: str, note: str) -> None:
        PaymentEvent.objects.create(payment=self, gateway=self.gateway, kind="staff",
                                    actor=actor, outcome=outcome, note=note)


class PaymentEvent(models.Model):
    """One verified gateway message, or one staff decision, about a payment, with what the
    panel did about it. Append-only (a database trigger refuses UPDATE and DELETE)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="events",
                                null=True, blank=True)
    gateway = models.CharField(max_length=20)
    event_id = models.CharField(max_length=255, blank=True, db_index=True)
    kind = models.CharField(max_length=20)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
                                 null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    outcome = models.CharField(max_length=100)
    note = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                              blank=True, related_name="+")
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.gateway} {self.kind}: {self.outcome}"
