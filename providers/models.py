from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from providers import keys
from providers.alerts import alert_admins
from providers.client import MAX_IDS_PER_REQUEST, Client, ProviderError, check_url, mask_key

# Upstream rates are quoted per 1000 with up to 5 decimals (API v2 shows "0.27819"); keep 6.
RATE_PLACES = 6
# Balances and charges: API v2 shows 5 decimals ("100.84292").
MONEY_PLACES = 5
# The smallest money unit (panel/money.py's SMALLEST: the panel keeps five places too). A
# cost per 1000 below it is far likelier an upstream that rounds its rates ("0.004" stored
# as "0.00") than a real price, so such a service waits for an admin to confirm it.
SMALLEST_MONEY = Decimal(1).scaleb(-MONEY_PLACES)


def validate_upstream_url(url: str) -> None:
    """Only http(s) URLs whose host resolves to public addresses (unless settings allow
    private ones for the sandbox); the client checks again at every call."""
    try:
        check_url(url, allow_private=settings.PROVIDER_ALLOW_PRIVATE_ADDRESSES)
    except ProviderError as exc:
        raise ValidationError(exc.message) from None


# What an upstream may not have, of the actions beyond services, add, status and balance.
UNSUPPORTABLE_ACTIONS = ("refill", "refill_status", "cancel")


class Provider(models.Model):
    name = models.CharField(max_length=100, unique=True)
    api_url = models.URLField("API URL", max_length=500, validators=[validate_upstream_url])
    api_key_encrypted = models.TextField(editable=False)
    currency = models.CharField(max_length=3, default="USD")
    # 1 unit of the provider's currency = this many units of the panel's currency.
    rate_to_panel = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal(1))
    enabled = models.BooleanField(default=True)

    balance = models.DecimalField(
        max_digits=18, decimal_places=MONEY_PLACES, null=True, blank=True, editable=False
    )
    balance_currency = models.CharField(max_length=3, blank=True, editable=False)
    balance_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    low_balance_threshold = models.DecimalField(
        max_digits=18, decimal_places=MONEY_PLACES, null=True, blank=True
    )
    # Set when the low-balance alert went out; cleared once the balance recovers.
    low_balance_alerted = models.BooleanField(default=False, editable=False)

    # Set when an upstream reported money (balance, an order's charge) in another currency
    # than `currency`: then `rate_to_panel` converts the wrong thing and every cost is wrong,
    # so nothing is bought from it until an admin checks both and resumes buying. Also set
    # when it refused our key or account (refused_key): every order would fail there.
    buying_paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    currency_mismatch = models.TextField("why buying is paused", blank=True, editable=False)

    # Actions of UNSUPPORTABLE_ACTIONS this upstream does not have, learned from its replies
    # (learn_unsupported) or set by an admin: refills and cancels of orders bought here are
    # then not offered, and requests for them end instead of being retried.
    unsupported_actions = models.JSONField(default=list, blank=True)
    unsupported_learned = models.TextField("how they were learned", blank=True,
                                           editable=False)

    # Ids per status request, adapted to how fast the upstream answers (adapt_status_batch):
    # some panels scan their orders once per id, so a long list can outlast the read timeout.
    status_batch_size = models.PositiveSmallIntegerField(
        "ids per status request", default=MAX_IDS_PER_REQUEST, editable=False)
    status_latency_ms = models.PositiveIntegerField(
        "last status request took (ms)", null=True, blank=True, editable=False)
    status_timed_out_at = models.DateTimeField(
        "last status request timed out", null=True, blank=True, editable=False)

    # Orders whose upstream charge (or count) came back far below what the panel bought them
    # for (orders flag them): an upstream splitting lists its own way shows on its first.
    cost_mismatches = models.PositiveIntegerField("cost mismatches found", default=0,
                                                  editable=False)
    last_cost_mismatch = models.TextField(blank=True, editable=False)
    last_cost_mismatch_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Status batches (orders or refills) that failed as a whole in a row, e.g. the upstream
    # is down: the polls back off on it (orders/polling.py); an answered batch clears it.
    poll_failures = models.PositiveIntegerField(default=0, editable=False)

    last_sync_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_ok = models.BooleanField(null=True, editable=False)
    last_sync_message = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status_batch_size__gte=1,
                                   status_batch_size__lte=MAX_IDS_PER_REQUEST),
                name="provider_status_batch_size_1_to_100"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # "Checked when the URL is saved": also for code paths that skip form validation.
        validate_upstream_url(self.api_url)
        super().save(*args, **kwargs)

    @property
    def api_key(self) -> str:
        return keys.decrypt(self.api_key_encrypted)

    @api_key.setter
    def api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = keys.encrypt(plaintext)

    @property
    def masked_key(self) -> str:
        return mask_key(self.api_key) if self.api_key_encrypted else ""

    def client(self) -> Client:
        return Client(
            self.api_url,
            self.api_key,
            name=self.name,
            connect_timeout=settings.PROVIDER_CONNECT_TIMEOUT,
            read_timeout=settings.PROVIDER_READ_TIMEOUT,
            allow_private=settings.PROVIDER_ALLOW_PRIVATE_ADDRESSES,
            read_retries=settings.PROVIDER_READ_RETRIES,
            user_agent=f"{settings.PANEL_NAME} (smm-reseller-panel)",
        )

    def to_panel_currency(self, amount: Decimal) -> Decimal:
        return amount * self.rate_to_panel

    @property
    def buying(self) -> bool:
        """Whether orders may be sent to this provider."""
        return self.enabled and self.buying_paused_at is None

    def bills_in(self, reported: str | None) -> bool:
        """Whether a currency an upstream reported is the configured one; an upstream that
        names none is taken at its configuration."""
        reported = (reported or "").strip().upper()
        return not reported or reported == self.currency.strip().upper()

    def check_reported_currency(self, reported: str | None, where: str) -> bool:
        """False, and buying paused with the admins alerted (once), when the upstream
        reported `where` in another currency than configured."""
        if self.bills_in(reported):
            return True
        self.pause_buying(f"{where} was reported in {reported}, but the provider is "
                          f"configured in {self.currency}")
        return False

    def pause_buying(self, reason: str,
                     check: str = "its currency and conversion rate") -> bool:
        """Stop buying from this provider; True (and the admins alerted) if this paused it,
        False if it already was: compare-and-set, so racing checks alert once."""
        now = timezone.now()
        paused = Provider.objects.filter(pk=self.pk, buying_paused_at__isnull=True).update(
            buying_paused_at=now, currency_mismatch=reason)
        if paused:
            self.buying_paused_at, self.currency_mismatch = now, reason
            alert_admins(f"Buying paused at provider {self.name}",
                         f"{reason}. Nothing is bought from {self.name} until an admin checks "
                         f"{check} and resumes buying (admin: Providers, action "
                         "'Resume buying').")
        return bool(paused)

    def refused_key(self, error: ProviderError, where: str) -> bool:
        """True, and buying paused with the admins alerted (once), when `error` says the
        upstream refused our key or account: sending more orders there only fails them."""
        if not error.key_refused:
            return False
        self.pause_buying(f"{where}: the upstream refused our API key or account "
                          f"({error.message})", check="the API key and the account there")
        return True

    def resume_buying(self) -> None:
        Provider.objects.filter(pk=self.pk).update(buying_paused_at=None, currency_mismatch="")
        self.buying_paused_at, self.currency_mismatch = None, ""

    def adapt_status_batch(self, ids: int, seconds: float | None) -> int:
        """Note how a status request about `ids` ids went (`seconds` it took, None when it
        timed out) and adapt the batch size to it; returns the new size. In memory only:
        save_status_batch writes it, once per batch however many requests it took."""
        self.status_batch_size = adapted_batch_size(
            self.status_batch_size, ids, seconds, settings.STATUS_BATCH_TARGET_SECONDS)
        if seconds is None:
            self.status_timed_out_at = timezone.now()
        else:
            self.status_latency_ms = round(seconds * 1000)
        return self.status_batch_size

    def save_status_batch(self) -> None:
        Provider.objects.filter(pk=self.pk).update(
            status_batch_size=self.status_batch_size, status_latency_ms=self.status_latency_ms,
            status_timed_out_at=self.status_timed_out_at)

    @property
    def can_refill(self) -> bool:
        """A refill needs both: one to ask for it, one to follow it."""
        return "refill" not in self.unsupported_actions and self.reports_refills

    @property
    def reports_refills(self) -> bool:
        return "refill_status" not in self.unsupported_actions

    @property
    def can_cancel(self) -> bool:
        return "cancel" not in self.unsupported_actions

    def learn_unsupported(self, action: str, error: ProviderError) -> bool:
        """True when `error` says this upstream has no such action, recorded (and the admins
        told) the first time it says so."""
        if not error.unsupported or action not in UNSUPPORTABLE_ACTIONS:
            return False
        if action in self.unsupported_actions:
            return True
        with transaction.atomic():  # two sweeps learning two actions at once keep both
            row = Provider.objects.select_for_update().only(
                "unsupported_actions", "unsupported_learned").get(pk=self.pk)
            known = set(row.unsupported_actions)
            learned = row.unsupported_learned
            if action not in known:
                known.add(action)
                learned += (f"{timezone.now():%Y-%m-%d %H:%M} UTC: {action} answered "
                            f"{error.message!r}\n")
                Provider.objects.filter(pk=self.pk).update(
                    unsupported_actions=sorted(known), unsupported_learned=learned)
        first = action not in row.unsupported_actions
        self.unsupported_actions, self.unsupported_learned = sorted(known), learned
        if first:
            alert_admins(f"Provider {self.name} has no {action}",
                         f"{self.name} answered {action} with {error.message!r}: the panel "
                         f"no longer offers what needs it for orders bought there, and ends "
                         "the requests already made. If it does have it, untick it under "
                         "'Unsupported actions' on the provider (admin: Providers).")
        return True

    def record_sync(self, ok: bool, message: str) -> None:
        Provider.objects.filter(pk=self.pk).update(
            last_sync_at=timezone.now(), last_sync_ok=ok, last_sync_message=message
        )


def adapted_batch_size(size: int, ids: int, seconds: float | None, target: float) -> int:
    """The next status batch size, within 1..100: halved after a timeout; after a reply
    slower than `target` seconds, cut to what would have taken `target`; after a full batch
    answered within it, grown back towards what would have taken `target`, by half at most
    (a short batch says nothing about a full one). Latency is taken as growing with the
    number of ids, which is how the slow upstreams behave."""
    fits = int(ids * target / max(seconds, 0.001)) if seconds is not None else 0
    if seconds is None:
        size = min(size, ids) // 2
    elif seconds > target:
        size = min(size - 1, fits)
    elif ids >= size:
        size = max(size, min(size + max(1, size // 2), fits))
    return max(1, min(MAX_IDS_PER_REQUEST, size))


class ProviderServiceQuerySet(models.QuerySet["ProviderService"]):
    def offered(self) -> ProviderServiceQuerySet:
        return self.filter(offered=True, provider__enabled=True)


class ProviderService(models.Model):
    """One row of an upstream's catalog, as its last sync saw it. Never deleted: orders
    point at it; a service the upstream stopped listing is kept with offered=False."""

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="services")
    upstream_id = models.BigIntegerField()
    name = models.CharField(max_length=500)
    type = models.CharField(max_length=100)
    category = models.CharField(max_length=500, blank=True)
    # Cost per 1000 units, in the provider's currency.
    cost_rate = models.DecimalField(max_digits=18, decimal_places=RATE_PLACES)
    min_quantity = models.PositiveBigIntegerField()
    max_quantity = models.PositiveBigIntegerField()
    refill = models.BooleanField(default=False)
    cancel = models.BooleanField(default=False)
    dripfeed = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    raw = models.JSONField(default=dict)
    offered = models.BooleanField(default=True)
    # Cleared by every sync that changes the cost: a confirmation is of one cost, not all.
    cost_confirmed = models.BooleanField(
        "tiny cost confirmed", default=False,
        help_text="An admin checked that a cost of zero or below 0.00001 per 1000 is real. "
                  "Until then nothing is sold through this upstream service.")
    first_seen_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ProviderServiceQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "upstream_id"], name="provider_service_unique_upstream_id"
            ),
        ]
        indexes = [models.Index(fields=["provider", "offered"])]

    def __str__(self) -> str:
        return f"{self.provider.name} #{self.upstream_id} {self.name}"

    @property
    def cost_is_tiny(self) -> bool:
        """Zero, or below the smallest money unit per 1000, in the panel's currency."""
        return self.provider.to_panel_currency(self.cost_rate) < SMALLEST_MONEY

    @property
    def cost_unconfirmed(self) -> bool:
        """A tiny cost no admin has confirmed: not sold (orders.Route.is_usable)."""
        return self.cost_is_tiny and not self.cost_confirmed


class ServiceChange(models.Model):
    """What a catalog sync (or a pricing rule reacting to it) saw change, for the admins."""

    class Field(models.TextChoices):
        RATE = "rate"
        MIN = "min"
        MAX = "max"
        NAME = "name"
        TYPE = "type"
        CATEGORY = "category"
        REFILL = "refill"
        CANCEL = "cancel"
        DRIPFEED = "dripfeed"
        DISAPPEARED = "disappeared"
        REAPPEARED = "reappeared"
        NEW = "new"

    provider_service = models.ForeignKey(
        ProviderService, on_delete=models.CASCADE, related_name="changes"
    )
    field = models.CharField(max_length=20, choices=Field.choices)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider_service}: {self.field} {self.old_value} → {self.new_value}"


# A sync takes seconds; one unfinished after this was lost (the broker dropped the kick, or
# the worker died) and must not block the Sync now button for ever.
SYNC_RUN_GIVEN_UP_AFTER = timedelta(minutes=10)


class SyncRunQuerySet(models.QuerySet["SyncRun"]):
    def unfinished(self) -> SyncRunQuerySet:
        return self.exclude(phase__in=SyncRun.FINISHED)

    def give_up_lost(self) -> int:
        """Mark failed the unfinished runs older than SYNC_RUN_GIVEN_UP_AFTER."""
        now = timezone.now()
        return self.unfinished().filter(queued_at__lt=now - SYNC_RUN_GIVEN_UP_AFTER).update(
            phase=SyncRun.Phase.FAILED, finished_at=now,
            message="no worker finished this sync; ask again")


class SyncRun(models.Model):
    """One catalog sync asked for from the admin desk, as its page shows it while it runs:
    the task moves it through its phases and writes the counts when it is done."""

    class Phase(models.TextChoices):
        QUEUED = "queued", _("Queued")
        FETCHING = "fetching", _("Fetching the catalog")
        APPLYING = "applying", _("Applying changes")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    FINISHED = (Phase.DONE, Phase.FAILED)

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="sync_runs")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.QUEUED)
    created = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    retired = models.PositiveIntegerField(default=0)
    reappeared = models.PositiveIntegerField(default=0)
    repriced = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = SyncRunQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider_id} sync {self.queued_at:%Y-%m-%d %H:%M} {self.phase}"

    @property
    def finished(self) -> bool:
        return self.phase in self.FINISHED

    def move_to(self, phase: str, **fields: Any) -> None:
        """Record a phase (and any counts) at once, outside any transaction the sync holds,
        so the page polling this row sees it while the sync goes on."""
        fields["phase"] = phase
        if phase == self.Phase.FETCHING:
            fields["started_at"] = timezone.now()
        if phase in self.FINISHED:
            fields["finished_at"] = timezone.now()
        SyncRun.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)


class ProviderBalanceCheck(models.Model):
    """One balance an upstream reported: the history reconciliation compares with what our
    orders there should have cost (how the balance moved between two checks)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE,
                                 related_name="balance_checks")
    balance = models.DecimalField(max_digits=18, decimal_places=MONEY_PLACES)
    currency = models.CharField(max_length=3, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["provider", "checked_at"],
                                name="balance_check_provider_idx")]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.balance} {self.currency} at {self.checked_at}"
