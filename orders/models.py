from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders.params import parse_id
from panel import ledger
from panel.money import (
    MONEY_DIGITS,
    MONEY_PLACES,
    format_money,
    quantize_money,
    quantize_refund,
)
from providers.client import OrderStatus, UpstreamStatus
from providers.models import RATE_PLACES, Provider, ProviderService

log = logging.getLogger(__name__)


class ServiceType(models.TextChoices):
    DEFAULT = "Default"
    PACKAGE = "Package"
    CUSTOM_COMMENTS = "Custom Comments"
    CUSTOM_COMMENTS_PACKAGE = "Custom Comments Package"
    MENTIONS_WITH_HASHTAGS = "Mentions with Hashtags"
    MENTIONS_CUSTOM_LIST = "Mentions Custom List"
    MENTIONS_HASHTAG = "Mentions Hashtag"
    MENTIONS_USER_FOLLOWERS = "Mentions User Followers"
    MENTIONS_MEDIA_LIKERS = "Mentions Media Likers"
    SUBSCRIPTIONS = "Subscriptions"
    COMMENT_LIKES = "Comment Likes"
    COMMENT_REPLIES = "Comment Replies"
    POLL = "Poll"
    INVITES_FROM_GROUPS = "Invites from Groups"


def _rate_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=RATE_PLACES, **kwargs)


def _money_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs)


def _percent_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=7, decimal_places=2, **kwargs)


class Category(models.Model):
    name = models.CharField(max_length=200, unique=True)
    position = models.PositiveIntegerField(default=0)
    markup_percent = _percent_field(null=True, blank=True,
                                    help_text="Markup for its services; empty: the default.")
    # A disabled category takes all its services off sale without touching each one's flag,
    # so enabling it again brings back exactly the services that were on sale.
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class ServiceQuerySet(models.QuerySet["Service"]):
    def enabled(self) -> ServiceQuerySet:
        """On sale: the service and its category enabled."""
        return self.filter(enabled=True, category__enabled=True)

    def with_primary_cost(self) -> ServiceQuerySet:
        """Annotate `primary_cost`: the first usable route's cost per 1000 in the panel's
        currency, as orders.pricing.cost_rate computes it, in one query for a whole list."""
        usable = (Route.objects.filter(service=models.OuterRef("pk"),
                                       provider_service__offered=True,
                                       provider_service__provider__enabled=True,
                                       provider_service__provider__buying_paused_at__isnull=True)
                  .order_by("priority", "id")
                  .annotate(cost=models.F("provider_service__cost_rate")
                            * models.F("provider_service__provider__rate_to_panel"))
                  .values("cost")[:1])
        return self.annotate(primary_cost=models.Subquery(
            usable, output_field=models.DecimalField(max_digits=40, decimal_places=14)))

    def with_routes(self) -> ServiceQuerySet:
        return self.select_related("category").prefetch_related(
            models.Prefetch("routes", queryset=Route.objects.select_related(
                "provider_service__provider").order_by("priority", "id")))


class Service(models.Model):
    """What we sell: a marked-up service with one or more upstream routes."""

    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="services")
    name = models.CharField(max_length=500)
    type = models.CharField(max_length=40, choices=ServiceType.choices,
                            default=ServiceType.DEFAULT)
    description = models.TextField(blank=True)
    min_quantity = models.PositiveBigIntegerField(default=1)
    max_quantity = models.PositiveBigIntegerField(default=1)
    refill = models.BooleanField(default=False)
    refill_days = models.PositiveIntegerField(default=30, help_text="0 = no limit")
    cancel = models.BooleanField(default=False)
    dripfeed = models.BooleanField(default=False)
    one_order_per_link = models.BooleanField(
        default=True, help_text="Refuse a new order while one for the same link is active.")
    enabled = models.BooleanField(default=True)
    markup_percent = _percent_field(null=True, blank=True)
    fixed_rate = _rate_field(null=True, blank=True,
                             help_text="Price per 1000 in the panel's currency; overrides markup.")
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # What a later catalog sync may copy from the upstream service of the first route (the
    # price follows its cost by itself unless the service has a fixed rate).
    sync_name = models.BooleanField(default=False, help_text="Sync may update the name.")
    sync_description = models.BooleanField(default=False,
                                           help_text="Sync may update the description.")
    sync_bounds = models.BooleanField(default=False, help_text="Sync may update min and max.")

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["category__position", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(min_quantity__lte=models.F("max_quantity")),
                                   name="service_min_not_above_max"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    def use_routes(self, routes: list[Route]) -> None:
        """Routes loaded together with this service (a join instead of a prefetch query):
        `self.routes.all()` then returns them, exactly as prefetch_related would set it."""
        for route in routes:
            route.service = self
        self._prefetched_objects_cache = {"routes": routes}

    @property
    def for_sale(self) -> bool:
        """Enabled, in an enabled category (needs the category loaded, as with_routes does)."""
        return self.enabled and self.category.enabled

    def usable_routes(self) -> list[Route]:
        """Routes in priority order whose upstream service is offered by an enabled provider."""
        return [r for r in self.routes.all() if r.is_usable()]

    def refill_deadline(self, finished_at: Any) -> Any:
        if not self.refill_days or finished_at is None:
            return None
        return finished_at + timedelta(days=self.refill_days)


class Route(models.Model):
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="routes")
    provider_service = models.ForeignKey(ProviderService, on_delete=models.PROTECT,
                                         related_name="routes")
    priority = models.PositiveIntegerField(default=0)
    # Set when the upstream refused an order's drip-feed parameters although its catalog
    # says it drip-feeds (its own rules on intervals, say): the panel then runs drip-feeds
    # through this route itself. An admin clears both to let the upstream try again.
    dripfeed_refused_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the upstream refused a drip-feed; empty: it is sent upstream.")
    dripfeed_refusal = models.TextField(blank=True)

    class Meta:
        ordering = ["priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "provider_service"],
                                    name="route_unique_per_service"),
        ]

    def __str__(self) -> str:
        return f"{self.service_id} → {self.provider_service}"

    @property
    def provider(self) -> Provider:
        return self.provider_service.provider

    def is_usable(self) -> bool:
        upstream = self.provider_service
        return upstream.offered and self.provider.buying and not upstream.cost_unconfirmed

    @property
    def upstream_dripfeeds(self) -> bool:
        """Whether a drip-feed goes upstream as runs/interval (else the panel runs it)."""
        return self.provider_service.dripfeed and self.dripfeed_refused_at is None

    def refuse_dripfeed(self, reason: str) -> bool:
        """Remember that the upstream refused drip-feed parameters; True the first time."""
        now = timezone.now()
        refused = Route.objects.filter(pk=self.pk, dripfeed_refused_at__isnull=True).update(
            dripfeed_refused_at=now, dripfeed_refusal=reason)
        self.dripfeed_refused_at, self.dripfeed_refusal = now, reason
        return bool(refused)

    def cost_rate(self) -> Decimal:
        """The upstream's price per 1000 in the panel's currency."""
        return self.provider.to_panel_currency(self.provider_service.cost_rate)


class CustomRate(models.Model):
    """A price per 1000 for one customer on one service, instead of the computed one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="custom_rates")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="custom_rates")
    rate = _rate_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "service"], name="custom_rate_unique"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="custom_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.service_id}: {self.rate}"


_Row = TypeVar("_Row", bound=models.Model)
BATCH = 100  # the protocol's limit of ids per request


class ClaimQuerySet(models.QuerySet[_Row]):
    """Rows that are a work queue: every sweep claims its due rows the same way."""

    def claim(self, limit: int, *fields: str, order_by: str = "next_check_at",
              **updates: Any) -> list[tuple[Any, ...]]:
        """Lock up to `limit` of these rows, skipping rows another worker holds, apply
        `updates` to them in the same transaction, and return (pk, *fields) of each.

        The updates are what makes the claim stick once the lock is gone: a status, a lease
        (next_check_at pushed forward) or a claim token."""
        with transaction.atomic():
            rows = list(self.order_by(order_by).select_for_update(skip_locked=True)
                        .values_list("pk", *fields)[:limit])
            if rows:
                self.model._default_manager.filter(pk__in=[r[0] for r in rows]).update(**updates)
        return rows


def provider_batches(rows: Sequence[tuple[Any, ...]],
                     size: int | Callable[[Provider], int] = BATCH
                     ) -> Iterator[tuple[Provider, list[tuple[Any, ...]]]]:
    """Claimed rows of (pk, provider_id, …) grouped by provider, in chunks of `size` (or of
    `size(provider)`, asked afresh for each chunk), with the providers looked up once for the
    whole sweep. Rows without a provider are skipped."""
    by_provider: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        if row[1] is not None:
            by_provider[row[1]].append(row)
    providers = Provider.objects.in_bulk(list(by_provider))
    for provider_id, items in by_provider.items():
        provider, start = providers[provider_id], 0
        while start < len(items):
            step = max(1, size(provider) if callable(size) else size)
            yield provider, items[start:start + step]
            start += step


def new_claim_token() -> uuid.UUID:
    return uuid.uuid4()


class OrderQuerySet(ClaimQuerySet["Order"]):
    def for_customer(self, user_id: int) -> OrderQuerySet:
        """What a customer sees: their own orders, not the runs the panel drip-feeds itself."""
        return self.filter(user_id=user_id, parent__isnull=True)

    def find(self, order_id: object) -> Order | None:
        """The order a client named, within this queryset (say, one customer's), or None."""
        pk = parse_id(order_id)
        return None if pk is None else self.select_related(
            "service", "route__provider_service", "provider").filter(pk=pk).first()

    def live(self) -> OrderQuerySet:
        return self.exclude(status__in=Order.TERMINAL)

    def needing_attention(self) -> OrderQuerySet:
        """What staff must look at: orders parked with an unknown outcome, and flagged ones
        (a flag stays until staff resolve or dismiss it on the desk)."""
        return self.filter(Q(status=Order.Status.NEEDS_ATTENTION) | Q(flagged_at__isnull=False))

    def due_for_dispatch(self, now: Any) -> OrderQuerySet:
        return self.filter(status=Order.Status.QUEUED, next_check_at__lte=now)

    def due_for_check(self, now: Any) -> OrderQuerySet:
        return self.filter(status__in=Order.POLLED, next_check_at__lte=now,
                           upstream_id__isnull=False)

    def parked(self) -> OrderQuerySet:
        """Orders whose send has an unknown outcome: staff decide (resend, link, refund)."""
        return self.filter(status=Order.Status.NEEDS_ATTENTION)

    def grouped_by_provider_window(self, minutes: int) -> list[dict[str, Any]]:
        """These orders in groups of the same provider, park phase and HTTP status within
        windows of `minutes` (by parked_at, windows aligned to the epoch), newest window
        first: what a staff desk settles at once ("Sandbox, 14:10–14:20, read timeouts: 37
        orders"). Each group: provider_id, provider_name, window_start, window_end,
        park_phase, park_http_status, count, order_ids. One query."""
        from django.contrib.postgres.aggregates import ArrayAgg

        seconds = max(int(minutes * 60), 1)
        # Orders parked before these fields existed have only their flag's time.
        at = Coalesce("parked_at", "flagged_at", "submitted_at")
        window = models.Func(at, template=(
            f"to_timestamp(floor(extract(epoch FROM %(expressions)s) / {seconds}) * {seconds})"),
            output_field=models.DateTimeField())
        rows = (self.order_by().annotate(window_start=window)
                .filter(window_start__isnull=False)
                .values("sent_to_id", "sent_to__name", "window_start", "park_phase",
                        "park_http_status")
                .annotate(count=models.Count("id"), order_ids=ArrayAgg("id", order_by="id"))
                .order_by("-window_start", "sent_to__name", "park_phase"))
        return [{"provider_id": row["sent_to_id"], "provider_name": row["sent_to__name"] or "",
                 "window_start": row["window_start"],
                 "window_end": row["window_start"] + timedelta(seconds=seconds),
                 "park_phase": row["park_phase"], "park_http_status": row["park_http_status"],
                 "count": row["count"], "order_ids": row["order_ids"]} for row in rows]


class ParkPhase(models.TextChoices):
    """Where the send of a parked order broke (providers.client.Phase), or that the worker
    sending it was lost."""

    CONNECT = "connect"
    SEND = "send"
    READ = "read"
    HTTP = "http", "HTTP status"
    PARSE = "parse"
    REPLY = "reply"
    WORKER_LOST = "worker_lost", "Worker lost"
    DUPLICATE_ID = "duplicate_id", "Upstream id already used"


class Order(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        SUBMITTING = "submitting"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"
        PENDING = "pending"
        IN_PROGRESS = "in_progress", "In progress"
        PROCESSING = "processing"
        COMPLETED = "completed"
        PARTIAL = "partial"
        CANCELED = "canceled"
        FAILED = "failed"

    POLLED = (Status.PENDING, Status.IN_PROGRESS, Status.PROCESSING)
    TERMINAL = (Status.COMPLETED, Status.PARTIAL, Status.CANCELED, Status.FAILED)
    # What customers and API clients see (the seed's statuses).
    CUSTOMER_STATUS = {
        Status.QUEUED: "Pending", Status.SUBMITTING: "Pending",
        Status.NEEDS_ATTENTION: "Pending", Status.PENDING: "Pending",
        Status.IN_PROGRESS: "In progress", Status.PROCESSING: "Processing",
        Status.COMPLETED: "Completed", Status.PARTIAL: "Partial",
        Status.CANCELED: "Canceled", Status.FAILED: "Canceled",
    }

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="orders")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="orders")
    # Drip-feed the upstream cannot do is run by the panel: one child order per run.
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="runs_set")
    run_number = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)

    link = models.TextField(blank=True)
    quantity = models.PositiveBigIntegerField()  # per run for drip-feed
    runs = models.PositiveIntegerField(null=True, blank=True)
    interval = models.PositiveIntegerField(null=True, blank=True)  # minutes
    charged_units = models.PositiveBigIntegerField()
    params = models.JSONField(default=dict, blank=True)  # the type's other API v2 parameters

    # Snapshots: refunds come from what was paid, never from today's price.
    rate = _rate_field()
    charge = _money_field()
    cost = _money_field(help_text="Expected upstream cost in the panel's currency when placed.")
    refunded = _money_field(default=Decimal(0))

    route = models.ForeignKey(Route, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="orders")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="orders")
    forced_route = models.ForeignKey(Route, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    tried_routes = models.JSONField(default=list, blank=True)
    upstream_id = models.BigIntegerField(null=True, blank=True)
    upstream_charge = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
                                          null=True, blank=True)
    upstream_currency = models.CharField(max_length=3, blank=True)
    cost_difference = _money_field(
        null=True, blank=True,
        help_text="The upstream's charge in the panel's currency minus the expected cost: "
                  "what the margin really was. Empty until the upstream reports a charge in "
                  "the provider's currency.")
    # How many units the upstream says it took the order for, where its status tells.
    upstream_quantity = models.BigIntegerField(null=True, blank=True)
    start_count = models.BigIntegerField(null=True, blank=True)
    remains = models.BigIntegerField(null=True, blank=True)

    error = models.TextField(blank=True)
    flag_reason = models.TextField(blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True, db_index=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    checks = models.PositiveIntegerField(default=0)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_sent_at = models.DateTimeField(null=True, blank=True)
    # A cancel the upstream definitely did not take is asked again, a bounded number of
    # times (orders/cancels.py); the last reason stays here for staff and the customer.
    cancel_due_at = models.DateTimeField(null=True, blank=True)
    cancel_attempts = models.PositiveIntegerField(default=0)
    cancel_error = models.TextField(blank=True)
    # Status checks that came back with an error for this order alone, in a row, and the
    # last one's text (orders/polling.py); a good reply clears both.
    poll_failures = models.PositiveIntegerField(default=0)
    poll_error = models.TextField(blank=True)
    # The claim a worker holds while it sends: a send goes out only while the row still
    # carries the token of the claim that started it (see orders/dispatch.py).
    claim_token = models.UUIDField(null=True, blank=True)
    # Sends put off by a temporary upstream refusal (rate limit, our balance there too low).
    deferrals = models.PositiveIntegerField(default=0)
    # The id of the request that placed it (an API call's, or one made up for a web form):
    # the worker's log lines for its send carry it too, so one search follows the order.
    request_id = models.CharField(max_length=64, blank=True)
    # The provider the latest `add` went (or was about to go) to, set right before the call:
    # a send the watchdog finds stuck is known to be at this provider.
    sent_to = models.ForeignKey(Provider, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+")
    # What exactly happened when the order was parked with an unknown outcome, so staff can
    # settle the parked orders of one provider and time window together (OrderQuerySet.
    # grouped_by_provider_window): the phase of the failure, the HTTP status, and the start
    # of the reply's body with our key masked.
    parked_at = models.DateTimeField(null=True, blank=True)
    park_phase = models.CharField(max_length=20, choices=ParkPhase.choices, blank=True)
    park_http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    park_reply = models.TextField(blank=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "next_check_at"], name="order_due_idx"),
            models.Index(fields=["service", "link"], name="order_link_idx"),
            models.Index(fields=["user", "-id"], name="order_customer_idx"),
            # The orders page's status tabs: counted by an index-only scan.
            models.Index(fields=["user", "status"], condition=models.Q(parent__isnull=True),
                         name="order_customer_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["provider", "upstream_id"],
                                    condition=Q(upstream_id__isnull=False),
                                    name="order_upstream_id_unique_per_provider"),
            models.CheckConstraint(condition=Q(refunded__gte=0, refunded__lte=models.F("charge")),
                                   name="order_refund_within_charge"),
            models.CheckConstraint(condition=Q(charge__gte=0), name="order_charge_not_negative"),
        ]

    def __str__(self) -> str:
        return f"order #{self.pk}"

    @property
    def customer_status(self) -> str:
        return self.CUSTOMER_STATUS[self.Status(self.status)]

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def runs_by_panel(self) -> bool:
        """A drip-feed the panel runs itself, one child order per run: live without an
        upstream order of its own. Its runs settle it; staff act on the runs."""
        return self.parent_id is None and self.status in self.POLLED and self.upstream_id is None

    def to_api_dict(self, currency: str) -> dict[str, str]:
        """API v2 `status`: what the customer paid (net of refunds), the seed's status words."""
        return api_status(self.charge, self.refunded, self.start_count, self.status,
                          self.remains, self.charged_units, currency)

    def log(self, kind: str, message: str = "", actor_id: int | None = None) -> None:
        OrderEvent.objects.create(order_id=self.pk, kind=kind, message=message,
                                  actor_id=actor_id)

    def compare_and_set(self, expected: str | tuple[str, ...], **fields: Any) -> bool:
        """Update only if the row is still in an expected status: a duplicate task or a
        replayed reply then changes nothing."""
        statuses = (expected,) if isinstance(expected, str) else expected
        changed = Order.objects.filter(pk=self.pk, status__in=statuses).update(**fields)
        if changed:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(changed)

    # --- money -------------------------------------------------------------------------

    def refund_units(self) -> int | None:
        """The units `remains` counts against; None when the panel cannot know them."""
        if self.service.type == ServiceType.PACKAGE:
            return None  # the upstream's package size is not ours to know
        if self.service.type == ServiceType.CUSTOM_COMMENTS_PACKAGE:
            return len(str(self.params.get("comments", "")).split("\n")) or None
        return self.charged_units

    def undelivered_share(self, remains: int) -> Decimal:
        """charge × remains / quantity, remains clamped so it can never exceed the charge."""
        units = self.refund_units()
        if not units:
            return Decimal(0)
        return quantize_refund(self.charge * min(max(remains, 0), units) / units)

    def undelivered_money(self) -> Decimal:
        """What of this order's charge was not delivered, as far as its status tells."""
        if self.status in (self.Status.FAILED, self.Status.CANCELED):
            return self.charge
        if self.status == self.Status.PARTIAL:
            return self.undelivered_share(self.remains or 0)
        return Decimal(0)

    def refund(self, amount: Decimal, memo: str, actor_id: int | None = None) -> bool:
        """Pay back `amount` of this order's charge, once: the ledger refuses a second refund
        of one order, whoever asks and however many ask at once. A drip-feed run's money is
        the parent's: the parent refunds the runs' undelivered shares when it settles."""
        if amount <= 0 or self.charge <= 0 or self.parent_id is not None:
            return False
        try:
            with transaction.atomic():
                ledger.refund(self.user_id, amount, order_id=self.pk, memo=memo,
                              actor_id=actor_id)
                Order.objects.filter(pk=self.pk, refunded=0).update(refunded=amount)
        except ledger.AlreadyRecorded:
            return False
        self.refunded = amount
        self.log("refund", f"{amount} refunded: {memo}", actor_id)
        return True

    # --- upstream status ---------------------------------------------------------------

    def fields_from_reply(self, reply: OrderStatus, now: Any, next_check: Any) -> dict[str, Any]:
        status = UPSTREAM_TO_INTERNAL[reply.status]
        # Remains count what refunds count (comment lines for a comments package, whose
        # charged_units is 1), so clamp to those units.
        remains = reply.clamped_remains(self.refund_units() or self.charged_units)
        fields: dict[str, Any] = {
            "status": status, "checks": self.checks + 1,
            "start_count": reply.start_count if reply.start_count is not None
            else self.start_count,
            "remains": remains if remains is not None else self.remains,
            "upstream_charge": reply.charge if reply.charge is not None
            else self.upstream_charge,
            "upstream_currency": (reply.currency or self.upstream_currency)[:3],
            "upstream_quantity": reply.quantity if reply.quantity is not None
            else self.upstream_quantity,
            "cost_difference": self._cost_difference(reply),
        }
        if status == self.Status.PARTIAL:
            fields["remains"] = self.partial_remains(reply)
        if status != self.status or fields["remains"] != self.remains:
            fields["last_progress_at"] = now
        if status in self.TERMINAL:
            fields.update(finished_at=now, next_check_at=None)
        else:
            fields["next_check_at"] = next_check
        return fields

    def partial_remains(self, reply: OrderStatus) -> int | None:
        """What a Partial reply says was not delivered, or None when it does not say it
        believably: no count, 0 (nothing missing contradicts Partial; some upstreams report
        "0" until someone sets it) or not below the units ordered (nothing delivered). A
        count kept from an earlier poll is no answer either: it was about a live order."""
        units = self.refund_units()
        if reply.remains is None or units is None or not 0 < reply.remains < units:
            return None
        return reply.remains

    def _cost_difference(self, reply: OrderStatus) -> Decimal | None:
        """The upstream's charge converted by the provider's rate, minus the cost snapshot.
        A charge in another currency than the provider's has no meaningful conversion."""
        provider = self.provider
        if reply.charge is None or provider is None:
            return self.cost_difference
        if not provider.bills_in(reply.currency):
            return None
        # A drip-feed run the panel runs has its own share of the parent's cost as its snapshot.
        return quantize_money(provider.to_panel_currency(reply.charge)) - self.cost

    def upstream_shortfall(self, cost_difference: Decimal | None,
                           upstream_quantity: int | None) -> str:
        """Why the upstream's charge or count is far below what this order was bought for
        ("" when it is not): below UPSTREAM_CHARGE_FLAG_PERCENT of the cost snapshot, or of
        the units ordered. An upstream that splits a list its own way, or charges one run of
        a drip-feed, has then taken less than the customer paid for."""
        share = Decimal(settings.UPSTREAM_CHARGE_FLAG_PERCENT) / 100
        # Many upstreams charge a subscription post by post, so its charge starts low.
        charged_up_front = self.service.type != ServiceType.SUBSCRIPTIONS
        if cost_difference is not None and self.cost > 0 and charged_up_front:
            charged = self.cost + cost_difference
            if charged < self.cost * share:
                return (f"the upstream charged {format_money(charged)} for it, against a cost "
                        f"of {format_money(self.cost)}: it may deliver less than was sold")
        units = self.refund_units()
        if upstream_quantity is not None and units and upstream_quantity < units * share:
            return (f"the upstream took it for {upstream_quantity} of the {units} units sold: "
                    "it may deliver less than was sold")
        return ""

    def new_upstream_shortfall(self, fields: dict[str, Any]) -> str:
        """The shortfall a status reply's `fields` show that the order's last reply did not:
        flagged once, on the first reply that shows it. Partial and Canceled are left out,
        since upstreams lower the charge of what they refunded."""
        if fields["status"] not in (*self.POLLED, self.Status.COMPLETED):
            return ""
        now = self.upstream_shortfall(fields["cost_difference"], fields["upstream_quantity"])
        before = self.upstream_shortfall(self.cost_difference, self.upstream_quantity)
        return now if now and not before else ""

    @staticmethod
    def flag_shortfalls(found: list[tuple[Order, str]]) -> None:
        """Flag orders whose upstream took less than was sold, and count them on their
        providers, in a constant number of queries: one upstream that splits lists its own
        way shows on every order of a batch at once. An order flagged for another reason
        keeps that flag; the shortfall goes into its history."""
        if not found:
            return
        now = timezone.now()
        fresh = [Order(pk=o.pk, flagged_at=now, flag_reason=reason)
                 for o, reason in found if o.flagged_at is None]
        Order.objects.bulk_update(fresh, ["flagged_at", "flag_reason"])
        OrderEvent.objects.bulk_create(OrderEvent(order_id=o.pk, kind="cost_mismatch",
                                                  message=reason) for o, reason in found)
        by_provider: dict[int, list[tuple[Order, str]]] = defaultdict(list)
        for order, reason in found:
            if order.provider_id is not None:
                by_provider[order.provider_id].append((order, reason))
        for provider_id, items in by_provider.items():
            last, reason = items[-1]
            Provider.objects.filter(pk=provider_id).update(
                cost_mismatches=models.F("cost_mismatches") + len(items),
                last_cost_mismatch=f"{last}: {reason}", last_cost_mismatch_at=now)
        log.warning("%d orders bought for less than was sold, e.g. %s: %s", len(found),
                    found[-1][0], found[-1][1])

    def apply_upstream_status(self, reply: OrderStatus, next_check: Any = None) -> bool:
        """Record one status reply; True if it changed the order."""
        if self.status not in self.POLLED:
            return False
        if self.provider is not None:
            self.provider.check_reported_currency(reply.currency, f"the status of {self}")
        now = timezone.now()
        fields = self.fields_from_reply(reply, now, next_check or now)
        shortfall = self.new_upstream_shortfall(fields)
        if fields["status"] in self.TERMINAL:
            changed = self.finish(fields, reported_remains=reply.remains)
        else:
            changed = self.compare_and_set(self.status, **fields)
        if changed and shortfall:
            Order.flag_shortfalls([(self, shortfall)])
        return changed

    def finish(self, fields: dict[str, Any], *, reported_remains: int | None) -> bool:
        """Move to a terminal status and refund what it calls for, in one transaction."""
        with transaction.atomic():
            if not self.compare_and_set(self.status, **fields):
                return False
            self.log("status", f"the upstream reports it {self.customer_status}")
            if self.status == self.Status.CANCELED:
                self.refund(self.charge, "canceled upstream")
            elif self.status == self.Status.PARTIAL:
                self._refund_partial(reported_remains)
            if self.parent_id:
                Order.settle_runs(self.parent_id)
        return True

    def _refund_partial(self, reported_remains: int | None) -> None:
        """Refund the undelivered share, or, when the reply did not say it believably
        (partial_remains), hold the money and flag the order: a guess could refund nothing
        for an order that was not delivered, or everything for one that was."""
        if self.remains is None:
            said = "no count" if reported_remains is None else f"remains {reported_remains}"
            units = self.refund_units()
            of = f"of {units} units" if units else "for a package, whose size is not ours"
            self.flag(f"Partial, but the undelivered quantity is unknown (the upstream said "
                      f"{said} {of}): check upstream and refund by hand")
            return
        self.refund(self.undelivered_share(self.remains), f"partial: {self.remains} undelivered")

    def flag(self, reason: str) -> None:
        Order.objects.filter(pk=self.pk).update(flagged_at=timezone.now(), flag_reason=reason)
        self.log("flagged", reason)

    def flag_parent(self, reason: str) -> None:
        """A drip-feed run needs a person: so does the drip-feed the customer sees."""
        if self.parent_id is not None:
            Order(pk=self.parent_id).flag(reason)

    def record_parent_progress(self) -> None:
        if self.parent_id is not None:
            Order.objects.filter(pk=self.parent_id).update(last_progress_at=timezone.now())

    @staticmethod
    def settle_runs(parent_id: int) -> None:
        """A run of a drip-feed the panel runs itself has ended: schedule the next run (once
        the interval since this one's send has passed; upstreams that allow one live order
        per link refuse overlapping runs), or, after the last, settle the parent: Completed,
        Partial with the undelivered runs' shares refunded, or Canceled when nothing at all
        was delivered."""
        parent = Order.objects.select_for_update().select_related("service").get(pk=parent_id)
        runs = list(parent.runs_set.select_related("service").order_by("run_number"))
        now = timezone.now()
        Order.objects.filter(pk=parent.pk).update(last_progress_at=now)
        waiting = [r for r in runs if r.status == r.Status.QUEUED and r.next_check_at is None]
        if parent.is_terminal or any(not r.is_terminal for r in runs if r not in waiting):
            return  # a run is still out (or due): the next one waits for it
        if waiting:
            last = max((r for r in runs if r.is_terminal), key=lambda r: r.run_number or 0)
            due = max(now, (last.submitted_at or now) + timedelta(minutes=parent.interval or 0))
            Order.objects.filter(pk=waiting[0].pk, next_check_at__isnull=True).update(
                next_check_at=due)
            parent.log("drip_feed_next", f"run {waiting[0].run_number} of {parent.runs} due "
                                         f"{due:%Y-%m-%d %H:%M} UTC")
            if due <= now:
                transaction.on_commit(lambda: kick_dispatch(waiting[0].pk), robust=True)
            return
        parent._settle(runs)

    def _settle(self, runs: list[Order]) -> None:
        # A run that ended Partial without saying how much: staff must settle the whole.
        unknown = any(r.status == r.Status.PARTIAL and r.remains is None for r in runs)
        undelivered = sum((r.undelivered_money() for r in runs), Decimal(0))
        missing = sum(r.quantity if r.status in (r.Status.FAILED, r.Status.CANCELED)
                      else (r.remains or 0) if r.status == r.Status.PARTIAL else 0 for r in runs)
        if missing >= self.charged_units:
            status = self.Status.CANCELED
        elif missing or unknown:
            status = self.Status.PARTIAL
        else:
            status = self.Status.COMPLETED
        fields = {"status": status, "remains": min(missing, self.charged_units),
                  "finished_at": timezone.now(), "next_check_at": None}
        with transaction.atomic():
            if not self.compare_and_set(self.status, **fields):
                return
            self.log("settled", f"{self.customer_status}: {missing} of {self.charged_units} "
                                "undelivered over its runs")
            if unknown:
                self.flag("a run ended Partial with unknown remains: refund by hand")
            elif undelivered > 0:
                self.refund(min(undelivered, self.charge),
                            f"drip-feed: {missing} of {self.charged_units} undelivered")

    # --- staff actions on orders whose upstream outcome is unknown ---------------------

    def resend(self, route: Route, actor_id: int) -> bool:
        """Queue the order again for the chosen route: staff checked it was not bought."""
        with transaction.atomic():
            if not self.compare_and_set(self.Status.NEEDS_ATTENTION, status=self.Status.QUEUED,
                                        forced_route=route, tried_routes=[], claim_token=None,
                                        next_check_at=timezone.now()):
                return False
            self.log("resend", f"resent to {route}", actor_id)
            transaction.on_commit(lambda: kick_dispatch(self.pk), robust=True)
        return True

    def attach_upstream_id(self, upstream_id: int, route: Route, actor_id: int) -> bool:
        """Staff found the order upstream by hand: link it and start polling."""
        now = timezone.now()
        with transaction.atomic():
            if not self.compare_and_set(
                    (self.Status.NEEDS_ATTENTION, self.Status.SUBMITTING),
                    status=self.Status.PENDING, upstream_id=upstream_id, route=route,
                    provider=route.provider, next_check_at=now, last_progress_at=now,
                    flagged_at=None, flag_reason="", claim_token=None):
                return False
            self.log("attach", f"linked to upstream order {upstream_id} at {route.provider}",
                     actor_id)
        return True

    def fail_and_refund(self, actor_id: int | None, reason: str) -> bool:
        """Staff give up on an order that was never bought: FAILED and the whole charge back.
        Not while a send is in flight (SUBMITTING): its outcome is not known yet."""
        return self.fail((self.Status.NEEDS_ATTENTION, self.Status.QUEUED), actor_id, reason)

    def fail(self, expected: tuple[str, ...], actor_id: int | None, reason: str) -> bool:
        with transaction.atomic():
            if not self.compare_and_set(
                    expected,
                    status=self.Status.FAILED, error=reason, finished_at=timezone.now(),
                    next_check_at=None, claim_token=None):
                return False
            self.log("failed", reason, actor_id)
            self.refund(self.charge, f"failed: {reason}", actor_id)
            if self.parent_id:
                Order.settle_runs(self.parent_id)
        return True

    def refund_partial_by_hand(self, remains: int, actor_id: int) -> bool:
        """Staff settle a Partial whose remains the upstream did not say."""
        if self.status != self.Status.PARTIAL or self.refund_units() is None:
            return False
        return self.refund(self.undelivered_share(remains),
                           f"partial: {remains} undelivered (by staff)", actor_id)

    def refund_amount_by_hand(self, amount: Decimal, actor_id: int, reason: str) -> bool:
        """Staff settle a Partial the panel cannot measure (a Package: its size upstream is
        not ours to know) with an amount they decide, never more than was paid."""
        if self.status != self.Status.PARTIAL or not reason.strip():
            return False
        return self.refund(min(amount, self.charge), f"partial (by staff): {reason}", actor_id)

    def mark_completed(self, actor_id: int, reason: str) -> bool:
        """Staff saw upstream that the order was delivered in full (a stuck or parked order,
        say): Completed, and the charge stays paid. Not for an order never bought (fail and
        refund it) nor one already refunded in part (a refund is never taken back)."""
        expected = (self.Status.NEEDS_ATTENTION, *self.POLLED)
        if self.refunded or not reason.strip() or self.runs_by_panel:
            return False
        with transaction.atomic():
            if not self.compare_and_set(expected, status=self.Status.COMPLETED, remains=0,
                                        finished_at=timezone.now(), next_check_at=None,
                                        claim_token=None, flagged_at=None, flag_reason=""):
                return False
            self.log("completed_by_hand", reason, actor_id)
            if self.parent_id:
                Order.settle_runs(self.parent_id)
        return True

    def cancel_by_hand(self, actor_id: int, reason: str) -> bool:
        """Staff saw upstream that the order was canceled there (the cancel went through but
        polling cannot tell): Canceled and the whole charge back, as polling would do."""
        if not reason.strip() or self.runs_by_panel:
            return False
        with transaction.atomic():
            if not self.compare_and_set(self.POLLED, status=self.Status.CANCELED,
                                        remains=self.charged_units, finished_at=timezone.now(),
                                        next_check_at=None, cancel_sent_at=None,
                                        cancel_due_at=None, flagged_at=None, flag_reason=""):
                return False
            self.log("canceled_by_hand", reason, actor_id)
            self.refund(self.charge, f"canceled (by staff): {reason}", actor_id)
            if self.parent_id:
                Order.settle_runs(self.parent_id)
        return True

    def retry_cancel(self, actor_id: int) -> bool:
        """Ask the upstream to cancel again, afresh (the attempts start over)."""
        now = timezone.now()
        changed = Order.objects.filter(pk=self.pk, status__in=self.POLLED,
                                       upstream_id__isnull=False).update(
            cancel_requested_at=now, cancel_due_at=now, cancel_sent_at=None,
            cancel_attempts=0, cancel_error="", flagged_at=None, flag_reason="")
        if changed:
            self.log("cancel_retried", "", actor_id)
            transaction.on_commit(lambda: kick("orders.tasks.send_cancels"), robust=True)
        return bool(changed)

    def refuse_cancel(self, actor_id: int, reason: str) -> bool:
        """Staff decline a cancel request; the customer reads `reason` in the order's history
        and may ask again."""
        changed = Order.objects.filter(pk=self.pk).exclude(
            cancel_requested_at__isnull=True, cancel_error="").update(
            cancel_requested_at=None, cancel_due_at=None, cancel_sent_at=None,
            cancel_error=reason[:1000], flagged_at=None, flag_reason="")
        if changed:
            self.log("cancel_refused_by_staff", reason, actor_id)
        return bool(changed)

    def dismiss_flag(self, actor_id: int, reason: str) -> bool:
        """Staff looked and nothing more is to be done: the order leaves the attention queue.
        An order parked with an unknown outcome stays: it needs one of the actions above."""
        changed = Order.objects.filter(pk=self.pk, flagged_at__isnull=False).exclude(
            status=self.Status.NEEDS_ATTENTION).update(flagged_at=None, flag_reason="")
        if changed:
            self.log("flag_dismissed", reason, actor_id)
        return bool(changed)


class RefillQuerySet(ClaimQuerySet["Refill"]):
    def needing_attention(self) -> RefillQuerySet:
        """Refills parked with an unknown outcome, and flagged ones (stuck, or rejected after
        every attempt): a flag stays until staff act or dismiss it."""
        return self.filter(Q(status=Refill.Status.NEEDS_ATTENTION) | Q(flagged_at__isnull=False))


class Refill(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        SUBMITTING = "submitting"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"
        PENDING = "pending"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed"
        REJECTED = "rejected"

    ACTIVE = (Status.QUEUED, Status.SUBMITTING, Status.NEEDS_ATTENTION, Status.PENDING,
              Status.IN_PROGRESS)
    POLLED = (Status.PENDING, Status.IN_PROGRESS)
    CUSTOMER_STATUS = {
        Status.QUEUED: "Pending", Status.SUBMITTING: "Pending",
        Status.NEEDS_ATTENTION: "Pending", Status.PENDING: "Pending",
        Status.IN_PROGRESS: "In progress", Status.COMPLETED: "Completed",
        Status.REJECTED: "Rejected",
    }

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refills")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="refills")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="refills")
    upstream_id = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Sends the upstream definitely refused (orders/refills.py): bounded, then Rejected.
    attempts = models.PositiveIntegerField(default=0)
    flag_reason = models.TextField(blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True)

    objects = RefillQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_check_at"], name="refill_due_idx")]
        constraints = [
            # "None pending": at most one active refill per order, in the database too.
            models.UniqueConstraint(fields=["order"],
                                    condition=Q(status__in=["queued", "submitting",
                                                            "needs_attention", "pending",
                                                            "in_progress"]),
                                    name="refill_one_active_per_order"),
        ]

    def __str__(self) -> str:
        return f"refill #{self.pk} of order #{self.order_id}"

    @property
    def customer_status(self) -> str:
        return self.CUSTOMER_STATUS[self.Status(self.status)]

    # --- staff actions (the refill desk) -----------------------------------------------

    # Staff may act on a refill in these states; never while a worker sends it.
    STAFF_ACTIONABLE = (Status.QUEUED, Status.NEEDS_ATTENTION, Status.PENDING,
                        Status.IN_PROGRESS, Status.REJECTED)

    def _staff_set(self, expected: Sequence[str], kind: str, message: str, actor_id: int,
                   **fields: Any) -> bool:
        with transaction.atomic():
            changed = Refill.objects.filter(pk=self.pk, status__in=expected).update(
                flagged_at=None, flag_reason="", **fields)
            if changed:
                for name, value in fields.items():
                    setattr(self, name, value)
                OrderEvent.objects.create(order_id=self.order_id, kind=kind, message=message,
                                          actor_id=actor_id)
        return bool(changed)

    def send_again(self, actor_id: int) -> bool:
        """Queue it for the upstream again, its attempts afresh. For one parked with an
        unknown outcome, staff checked the upstream has no refill of it."""
        expected = (self.Status.NEEDS_ATTENTION, self.Status.REJECTED, self.Status.QUEUED)
        try:
            return self._staff_set(expected, "refill_resent", f"refill #{self.pk} sent again",
                                   actor_id, status=self.Status.QUEUED, attempts=0, error="",
                                   upstream_id=None, finished_at=None,
                                   next_check_at=timezone.now())
        except IntegrityError:
            return False  # the customer asked for another refill of the order since

    def reject_by_hand(self, actor_id: int, reason: str) -> bool:
        """Rejected, with a reason the customer reads in the order's history."""
        if not reason.strip():
            return False
        active = [s for s in self.STAFF_ACTIONABLE if s != self.Status.REJECTED]
        return self._staff_set(active, "refill_rejected_by_staff", reason, actor_id,
                               status=self.Status.REJECTED, error=reason[:1000],
                               finished_at=timezone.now(), next_check_at=None)

    def mark_done_by_hand(self, actor_id: int, reason: str) -> bool:
        """Staff saw the refill delivered upstream: Completed. A refill moves no money."""
        return self._staff_set(self.STAFF_ACTIONABLE, "refill_done_by_hand",
                               reason or f"refill #{self.pk} done", actor_id,
                               status=self.Status.COMPLETED, finished_at=timezone.now(),
                               next_check_at=None)

    def dismiss_flag(self, actor_id: int, reason: str) -> bool:
        changed = Refill.objects.filter(pk=self.pk, flagged_at__isnull=False).exclude(
            status=self.Status.NEEDS_ATTENTION).update(flagged_at=None, flag_reason="")
        if changed:
            OrderEvent.objects.create(order_id=self.order_id, kind="refill_flag_dismissed",
                                      message=reason, actor_id=actor_id)
        return bool(changed)


class OrderEvent(models.Model):
    """What happened to an order and who did it: the audit trail staff read."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                              blank=True, related_name="+")
    kind = models.CharField(max_length=40)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind}"


class FormSubmission(models.Model):
    """The one-time token of a sent new-order or mass-order form, written in the transaction
    that places its orders: a double click, a reload or a second tab sending the same form
    finds the token taken (the primary key) and places nothing again."""

    token = models.UUIDField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="+")
    # What the submission placed, to show again to whoever sends it a second time.
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return str(self.token)

    @classmethod
    def purge(cls, older_than: timedelta = timedelta(days=7)) -> int:
        """Tokens only guard against a form sent twice within moments (a double click, a
        reload, a second tab): a week on, nobody re-sends one, so they need not pile up."""
        deleted, _ = cls.objects.filter(created_at__lt=timezone.now() - older_than).delete()
        return deleted


class ServiceUpdate(models.Model):
    """A change customers can see in what we sell: a new service, its list price up or down,
    withdrawn or back. Written by pricing.record_service_updates, which compares a service's
    list price now with the last one logged here (costs and routes never appear)."""

    class Kind(models.TextChoices):
        NEW = "new"
        PRICE_UP = "price_up", "Price up"
        PRICE_DOWN = "price_down", "Price down"
        DISABLED = "disabled"
        ENABLED = "enabled"

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="updates")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # List prices per 1000 before any customer's discount; None while not for sale.
    old_rate = _rate_field(null=True, blank=True)
    new_rate = _rate_field(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["service", "-created_at", "-id"],
                                name="service_update_latest_idx")]

    def __str__(self) -> str:
        return f"{self.service_id} {self.kind} {self.old_rate} → {self.new_rate}"


def api_statuses(user_id: int, ids: list[int], currency: str) -> dict[int, dict[str, str]]:
    """API v2 `status` of this customer's orders among `ids` (not drip-feed runs), by id.

    A batch `status` is the API's most frequent call, so it is one statement whose text never
    changes (the ids go as one array) and PostgreSQL writes the reply's strings: no model
    instances, no per-id work in Python. It answers exactly what api_status() does (tested)."""
    with connection.cursor() as cursor:
        cursor.execute(_API_STATUS_SQL, [*_API_STATUS_WORDS, user_id, ids])
        return {pk: {"charge": charge, "start_count": start, "status": status,
                     "remains": remains, "currency": currency}
                for pk, charge, start, status, remains in cursor.fetchall()}


def api_status(charge: Decimal, refunded: Decimal, start_count: int | None, status: str,
               remains: int | None, charged_units: int, currency: str) -> dict[str, str]:
    """One order's API v2 `status` reply from its columns (API_STATUS_COLUMNS)."""
    if remains is None:
        remains = 0 if status == Order.Status.COMPLETED else charged_units
    return {
        "charge": format_money(charge - refunded),
        "start_count": str(start_count or 0),
        "status": Order.CUSTOMER_STATUS[status],  # type: ignore[index]  # a str is a Status
        "remains": str(remains),
        "currency": currency,
    }


# charge − refunded keeps the columns' scale (MONEY_PLACES), as format_money() writes it.
_API_STATUS_SQL = (
    "SELECT id, (charge - refunded)::text, COALESCE(start_count, 0)::text, "  # noqa: S608
    f"CASE status {' '.join('WHEN %s THEN %s' for _ in Order.CUSTOMER_STATUS)} END, "
    "COALESCE(remains, CASE WHEN status = %s THEN 0 ELSE charged_units END)::text "
    f"FROM {Order._meta.db_table} "
    "WHERE user_id = %s AND parent_id IS NULL AND id = ANY(%s)")
_API_STATUS_WORDS = [*(text for pair in Order.CUSTOMER_STATUS.items() for text in pair),
                     Order.Status.COMPLETED]


UPSTREAM_TO_INTERNAL = {
    UpstreamStatus.PENDING: Order.Status.PENDING,
    UpstreamStatus.IN_PROGRESS: Order.Status.IN_PROGRESS,
    UpstreamStatus.PROCESSING: Order.Status.PROCESSING,
    UpstreamStatus.COMPLETED: Order.Status.COMPLETED,
    UpstreamStatus.PARTIAL: Order.Status.PARTIAL,
    UpstreamStatus.CANCELED: Order.Status.CANCELED,
}


def kick(task_name: str, *args: Any) -> bool:
    """Queue a task now rather than wait for the next sweep; call it on commit.

    The work is already a committed row, so a kick is only a shortcut: when the broker is
    down it is logged and dropped, and the sweep finds the row. It must never raise into the
    request that committed (an API client told "error" after being charged orders again).
    The task goes by name, so the workflows need not import orders.tasks, which imports them."""
    try:
        current_app.send_task(task_name, args=list(args), retry=False)
    except Exception as exc:  # any broker failure: the sweep is the guarantee, not the kick
        log.warning("kick %s%s not queued (%s); the next sweep picks it up", task_name,
                    tuple(args), exc)
        return False
    return True


class DispatchKicks:
    """Dispatch kicks, a few orders to a message when orders come fast.

    A Celery message costs the web worker about a millisecond of Python, as much as the
    order's own database work. An order placed when no kick left this process for WINDOW
    seconds is kicked at once, with any others waiting; one placed sooner waits, and goes
    with the next order that is due or, at the latest after WINDOW, from a thread that only
    sends what a burst left behind. A message carries at most BATCH orders, sent one after
    the other by a worker, so a slow upstream holds few back. Ids not yet sent when the
    process dies are found by the dispatch sweep, as a lost message would be."""

    WINDOW = 0.2
    BATCH = 10

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a fork copies no thread

    def _reset(self) -> None:
        self._ids: list[int] = []
        self._sent_at = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, order_id: int) -> None:
        with self._lock:
            self._ids.append(order_id)
            now = time.monotonic()
            ids = self._take(now) if (len(self._ids) >= self.BATCH
                                      or now - self._sent_at >= self.WINDOW) else []
            if not ids and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dispatch-kicks",
                                                daemon=True)
                self._thread.start()
        if ids:
            self._send(ids)
        else:
            self._wake.set()

    def _take(self, now: float) -> list[int]:
        ids, self._ids = self._ids, []
        if ids:
            self._sent_at = now
        return ids

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.WINDOW)
            with self._lock:
                ids = self._take(time.monotonic())
            self._send(ids)

    def _send(self, ids: list[int]) -> None:
        for start in range(0, len(ids), self.BATCH):
            kick("orders.tasks.dispatch_orders", ids[start:start + self.BATCH])


dispatch_kicks = DispatchKicks()


def kick_dispatch(order_id: int) -> None:
    """Send this order now rather than at the next sweep; call it on commit."""
    dispatch_kicks.add(order_id)
