from __future__ import annotations

import hashlib
import hmac
import secrets
import zoneinfo
from datetime import timedelta
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from panel.money import MONEY_DIGITS, MONEY_PLACES


@cache
def time_zone_names() -> frozenset[str]:
    """The IANA names this Python knows (system tzdata or the tzdata package)."""
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in time_zone_names():
        raise ValidationError(_("Choose a time zone from the list, e.g. Europe/Berlin."),
                              code="invalid_time_zone")


class User(AbstractUser):
    """Customers and staff are one model; what each may do comes from groups and permissions.

    `balance` is a cache of the sum of the user's ledger entries, written only by
    panel/ledger.py; the database refuses to let it go negative.
    """

    balance = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=Decimal(0), editable=False
    )
    # A customer's discount on every service's price, in percent.
    discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal(0),
        help_text="Discount on every price for this customer, in percent (0–100).",
    )
    # Every time on the panel is shown in this zone (panel.accounts.TimeZoneMiddleware).
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])

    class Meta:
        db_table = "panel_user"
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0),
                                   name="user_balance_not_negative"),
            models.CheckConstraint(
                condition=models.Q(discount_percent__gte=0, discount_percent__lte=100),
                name="user_discount_percent_range",
            ),
        ]


class LedgerEntry(models.Model):
    """One change of one customer's balance. Append-only: a database trigger refuses UPDATE
    and DELETE, and partial unique indexes refuse a second charge or refund of one order."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        CHARGE = "charge"
        REFUND = "refund"
        ADJUSTMENT = "adjustment"
        BONUS = "bonus"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="ledger_entries")
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                              blank=True, related_name="+")
    memo = models.TextField(blank=True)
    # Plain ids, not foreign keys: the panel app must not depend on the orders app.
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    refill_id = models.BigIntegerField(null=True, blank=True)
    # The payment a deposit or its bonus credits (payments.Payment): unique per kind below,
    # so the database itself refuses crediting one payment twice.
    payment_id = models.BigIntegerField(null=True, blank=True)
    balance_after = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["order_id"], condition=models.Q(kind="charge"),
                                    name="ledger_one_charge_per_order"),
            models.UniqueConstraint(fields=["order_id"], condition=models.Q(kind="refund"),
                                    name="ledger_one_refund_per_order"),
            models.CheckConstraint(
                condition=~models.Q(kind="charge") | models.Q(amount__lt=0, order_id__isnull=False),
                name="ledger_charge_is_negative_and_has_order",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="refund") | models.Q(amount__gt=0, order_id__isnull=False),
                name="ledger_refund_is_positive_and_has_order",
            ),
            models.UniqueConstraint(fields=["payment_id"], condition=models.Q(kind="deposit"),
                                    name="ledger_one_deposit_per_payment"),
            models.UniqueConstraint(fields=["payment_id"], condition=models.Q(kind="bonus"),
                                    name="ledger_one_bonus_per_payment"),
            models.CheckConstraint(
                condition=~models.Q(kind="bonus") | models.Q(amount__gt=0,
                                                             payment_id__isnull=False),
                name="ledger_bonus_is_positive_and_has_payment",
            ),
            models.CheckConstraint(condition=models.Q(balance_after__gte=0),
                                   name="ledger_balance_after_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} for {self.user_id}"


API_KEY_PREFIX_LENGTH = 8


def _hash_key(raw: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough (no dictionary to attack),
    # and it keeps API calls cheap.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiKeyManager(models.Manager["ApiKey"]):
    def get_queryset(self) -> ApiKeyQuerySet:
        return ApiKeyQuerySet(self.model, using=self._db)

    def active(self) -> ApiKeyQuerySet:
        return self.get_queryset().active()

    def authenticate(self, raw: str) -> ApiKey | None:
        """The active key matching `raw`, compared in constant time, or None.

        Every API call starts here, so it is one statement whose text never changes (the
        ORM would build the join anew each time, which costs more than the query): the
        key with its owner's discount, which prices orders; any other field of either
        loads when first read."""
        if not isinstance(raw, str) or len(raw) < API_KEY_PREFIX_LENGTH + 16:
            return None
        candidate = _hash_key(raw)
        with connections[self.db].cursor() as cursor:
            cursor.execute(_AUTHENTICATE_SQL, [raw[:API_KEY_PREFIX_LENGTH]])
            rows = cursor.fetchall()
        for key_id, hashed, last_used_at, user_id, discount in rows:
            if hmac.compare_digest(hashed, candidate):
                # from_db takes the values in the model's field order.
                key = ApiKey.from_db(self.db, ["id", "user_id", "hashed", "last_used_at"],
                                     [key_id, user_id, hashed, last_used_at])
                key.user = User.from_db(self.db, ["id", "discount_percent"],
                                        [user_id, discount])
                return key
        return None


class ApiKey(models.Model):
    """A customer's API v2 key: stored hashed, looked up by its first characters, shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=API_KEY_PREFIX_LENGTH, db_index=True)
    hashed = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyManager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user: User, name: str = "") -> tuple[ApiKey, str]:
        """Create a key; the raw key is returned this once and never stored."""
        raw = secrets.token_hex(32)
        key = cls.objects.create(user=user, name=name, prefix=raw[:API_KEY_PREFIX_LENGTH],
                                 hashed=_hash_key(raw))
        return key, raw

    def touch(self) -> None:
        """Note the key was used: at most one write a minute, so API calls stay cheap."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def revoke(self) -> None:
        ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now())


_AUTHENTICATE_SQL = (
    "SELECT k.id, k.hashed, k.last_used_at, k.user_id, u.discount_percent "  # noqa: S608
    f"FROM {ApiKey._meta.db_table} k JOIN {User._meta.db_table} u ON u.id = k.user_id "
    "WHERE k.prefix = %s AND k.revoked_at IS NULL AND u.is_active")
