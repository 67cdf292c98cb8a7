"""Catalog sync and balance checks: what the panel learns from its upstreams on a schedule.

Both call the upstream first and only then open a transaction, so no network call ever
holds a database lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from providers.alerts import alert_admins
from providers.client import Balance, ProviderError, UpstreamService
from providers.keys import KeyDecryptionError
from providers.models import (
    RATE_PLACES,
    SMALLEST_MONEY,
    Provider,
    ProviderBalanceCheck,
    ProviderService,
    ServiceChange,
    SyncRun,
)

log = logging.getLogger(__name__)

# Sent after a sync committed, with provider= and changed_ids= (ProviderService pks whose
# cost, bounds, flags, name or description changed, or that vanished or reappeared). Pricing
# listens to it; a receiver may return how many of our services it repriced, which the sync
# reports (the margin guard does).
catalog_changed = Signal()

_RATE_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)
# model attribute -> change-log field
_TRACKED = {
    "cost_rate": ServiceChange.Field.RATE,
    "min_quantity": ServiceChange.Field.MIN,
    "max_quantity": ServiceChange.Field.MAX,
    "name": ServiceChange.Field.NAME,
    "type": ServiceChange.Field.TYPE,
    "category": ServiceChange.Field.CATEGORY,
    "refill": ServiceChange.Field.REFILL,
    "cancel": ServiceChange.Field.CANCEL,
    "dripfeed": ServiceChange.Field.DRIPFEED,
}


@dataclass
class SyncResult:
    ok: bool
    message: str = ""
    created: int = 0
    updated: int = 0
    retired: int = 0
    reappeared: int = 0
    repriced: int = 0
    changed_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.created} new, {self.updated} changed, {self.retired} retired, "
                f"{self.reappeared} reappeared")
        return f"{text}, {self.repriced} repriced" if self.repriced else text


def sync_catalog(provider: Provider, run: SyncRun | None = None) -> SyncResult:
    """Fetch the upstream's `services` and bring our copy in line, in a constant number of
    queries. Refuses to retire anything when the upstream fails or lists nothing: an empty
    reply is far likelier a broken upstream than a provider that sells nothing. `run`, when
    the admin desk asked for this sync, is moved through its phases as the sync goes."""
    if run is not None:
        run.move_to(SyncRun.Phase.FETCHING)
    try:
        services = provider.client().services()
    except ProviderError as exc:
        provider.refused_key(exc, "the catalog sync")
        return _refused(provider, f"services failed: {exc.message}", run)
    if not services:
        return _refused(provider, "the upstream listed no services; nothing was retired", run)
    if run is not None:
        run.move_to(SyncRun.Phase.APPLYING)
    with transaction.atomic():
        # Serialise syncs of one provider (two beats, or a button pressed during a sweep).
        Provider.objects.select_for_update().filter(pk=provider.pk).first()
        result = _apply_catalog(provider, services)
    if result.changed_ids:
        replies: list[tuple[Any, Any]] = catalog_changed.send(
            sender=Provider, provider=provider, changed_ids=result.changed_ids)
        result.repriced = sum(r for _, r in replies if isinstance(r, int))
    provider.record_sync(True, result.summary())
    if run is not None:
        run.move_to(SyncRun.Phase.DONE, created=result.created, changed=result.updated,
                    retired=result.retired, reappeared=result.reappeared,
                    repriced=result.repriced, message=result.summary())
    log.info("catalog sync of %s: %s", provider.name, result.summary())
    return result


def _refused(provider: Provider, message: str, run: SyncRun | None = None) -> SyncResult:
    log.warning("catalog sync of %s refused: %s", provider.name, message)
    provider.record_sync(False, message)
    if run is not None:
        run.move_to(SyncRun.Phase.FAILED, message=message)
    return SyncResult(ok=False, message=message)


def _row_values(service: UpstreamService) -> dict[str, Any]:
    return {
        "cost_rate": service.rate.quantize(_RATE_QUANTUM),
        "min_quantity": max(service.min, 0),
        "max_quantity": max(service.max, 0),
        "name": service.name[:500],
        "type": service.type[:100],
        "category": service.category[:500],
        "refill": service.refill,
        "cancel": service.cancel,
        "dripfeed": service.dripfeed,
    }


def _apply_catalog(provider: Provider, services: list[UpstreamService]) -> SyncResult:
    now = timezone.now()
    listed = {s.service: s for s in services}  # a repeated id: the last one wins
    existing = {ps.upstream_id: ps for ps in ProviderService.objects.filter(provider=provider)}
    result = SyncResult(ok=True)
    # Not in the change log (too long to show), but our services that follow the upstream's
    # description must hear of it.
    described: set[int] = set()
    upserts: list[ProviderService] = []
    changes: list[tuple[ProviderService, str, str, str, str]] = []
    for upstream_id, service in listed.items():
        values = _row_values(service)
        row = existing.get(upstream_id)
        if row is None:
            row = ProviderService(provider=provider, upstream_id=upstream_id, first_seen_at=now)
            changes.append((row, ServiceChange.Field.NEW, "", values["name"], ""))
            result.created += 1
            old_cost = None
        else:
            diffs = [(_TRACKED[k], getattr(row, k), v) for k, v in values.items()
                     if getattr(row, k) != v]
            if not row.offered:
                diffs.append((ServiceChange.Field.REAPPEARED, "", ""))
                result.reappeared += 1
            if row.description != service.description:
                described.add(row.pk)
            if not diffs and row.raw == service.raw:
                continue
            result.updated += bool(diffs)
            old_cost = row.cost_rate
            changes.extend((row, f, _text(old), _text(new), "") for f, old, new in diffs
                           if f != ServiceChange.Field.RATE)
        if old_cost != values["cost_rate"]:
            row.cost_confirmed = False  # a confirmation was of the cost it saw
            entry = _cost_change(provider, row, old_cost, values["cost_rate"])
            if entry is not None:
                changes.append(entry)
        for key, value in values.items():
            setattr(row, key, value)
        row.raw, row.offered, row.updated_at, row.description = (
            service.raw, True, now, service.description)
        upserts.append(row)
    _upsert(upserts)
    vanished = [row for uid, row in existing.items() if row.offered and uid not in listed]
    _retire(vanished, now)
    changes.extend((row, ServiceChange.Field.DISAPPEARED, "", "", "") for row in vanished)
    result.retired = len(vanished)
    ServiceChange.objects.bulk_create(
        ServiceChange(provider_service_id=row.pk, field=f, old_value=old, new_value=new,
                      note=note, created_at=now)
        for row, f, old, new, note in changes
    )
    result.changed_ids = sorted(
        {row.pk for row, f, _, _, _ in changes if f != ServiceChange.Field.NEW} | described)
    _alert_tiny_costs(provider, [(row, note) for row, _, _, _, note in changes if note])
    return result


def _cost_change(provider: Provider, row: ProviderService, old: Decimal | None,
                 new: Decimal) -> tuple[ProviderService, str, str, str, str] | None:
    """The change-log entry of a changed cost (a new service's has its "new" entry), or of
    a tiny one, saying why it is not sold."""
    note = ""
    if provider.to_panel_currency(new) < SMALLEST_MONEY:
        note = (f"cost {new} per 1000 is zero or below the smallest money unit "
                f"({SMALLEST_MONEY}): likely an upstream that rounds its rates; not sold "
                "until an admin confirms it (admin: Provider services, 'Confirm tiny costs')")
    if old is None and not note:
        return None
    return (row, ServiceChange.Field.RATE, "" if old is None else _text(old), _text(new), note)


def _alert_tiny_costs(provider: Provider, tiny: list[tuple[ProviderService, str]]) -> None:
    if not tiny:
        return
    listed = ", ".join(f"#{row.upstream_id} {row.name}" for row, _ in tiny[:20])
    more = f" and {len(tiny) - 20} more" if len(tiny) > 20 else ""
    alert_admins(f"Costs to confirm at provider {provider.name}",
                 f"The catalog sync of {provider.name} found services whose cost is zero or "
                 f"below {SMALLEST_MONEY} per 1000: {listed}{more}. They are not sold until "
                 "an admin checks the cost upstream and confirms it (admin: Provider "
                 "services, action 'Confirm tiny costs').")


def confirm_tiny_costs(rows: list[ProviderService], actor: str) -> int:
    """An admin checked these tiny costs upstream: sell through them again. The change log
    says who did; pricing reacts as to any catalog change."""
    tiny = [row for row in rows if row.cost_unconfirmed]
    if not tiny:
        return 0
    with transaction.atomic():
        ProviderService.objects.filter(pk__in=[r.pk for r in tiny]).update(cost_confirmed=True)
        ServiceChange.objects.bulk_create(
            ServiceChange(provider_service=row, field=ServiceChange.Field.RATE,
                          old_value=_text(row.cost_rate), new_value=_text(row.cost_rate),
                          note=f"tiny cost confirmed by {actor}: sold again")
            for row in tiny)
    for row in tiny:
        row.cost_confirmed = True
    by_provider: dict[int, list[ProviderService]] = {}
    for row in tiny:
        by_provider.setdefault(row.provider_id, []).append(row)
    for group in by_provider.values():
        catalog_changed.send(sender=Provider, provider=group[0].provider,
                             changed_ids=[r.pk for r in group])
    return len(tiny)


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _upsert(rows: list[ProviderService]) -> None:
    if not rows:
        return
    # One INSERT … ON CONFLICT DO UPDATE for new and changed rows alike; PostgreSQL
    # returns every row's id, which the change log needs for the new ones.
    ProviderService.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["provider", "upstream_id"],
        update_fields=[*_TRACKED, "raw", "offered", "updated_at", "description",
                       "cost_confirmed"],
    )


def _retire(rows: list[ProviderService], now: Any) -> None:
    if rows:
        ProviderService.objects.filter(pk__in=[r.pk for r in rows]).update(
            offered=False, updated_at=now
        )


def check_balances() -> None:
    """Store every enabled provider's balance and alert once when one runs low or reports it
    in another currency than configured (which also pauses buying from it)."""
    for provider in Provider.objects.filter(enabled=True):
        check_balance(provider)


def check_balance(provider: Provider) -> Decimal | None:
    try:
        balance = provider.client().balance()
    except ProviderError as exc:
        log.warning("balance check of %s failed: %s", provider.name, exc.message)
        provider.refused_key(exc, "the balance check")
        return None
    record_balance(provider, balance)
    return balance.amount


def record_balance(provider: Provider, balance: Balance) -> None:
    """Store a balance the upstream reported (and its history), pause buying when it came in
    another currency, and alert once when it crosses the low-balance threshold."""
    now = timezone.now()
    with transaction.atomic():
        Provider.objects.filter(pk=provider.pk).update(
            balance=balance.amount, balance_currency=balance.currency, balance_checked_at=now,
        )
        # The history reconciliation reads: every reported balance, not only the latest.
        ProviderBalanceCheck.objects.create(provider=provider, balance=balance.amount,
                                            currency=(balance.currency or "")[:3],
                                            checked_at=now)
    provider.check_reported_currency(balance.currency, "its balance")
    threshold = provider.low_balance_threshold
    low = threshold is not None and balance.amount < threshold
    # Compare-and-set on the flag: one alert per crossing, however many checks race.
    flipped = Provider.objects.filter(pk=provider.pk, low_balance_alerted=not low).update(
        low_balance_alerted=low
    )
    if flipped and low:
        _alert_low_balance(provider, balance.amount, balance.currency)
    elif flipped:
        log.info("provider %s balance recovered: %s %s", provider.name, balance.amount,
                 balance.currency)


def report_out_of_funds(provider: Provider, upstream_message: str) -> None:
    """An upstream refused an order for lack of our funds there: alert once, as a balance
    check below the threshold would, until a later check sees the balance recovered."""
    if Provider.objects.filter(pk=provider.pk, low_balance_alerted=False).update(
            low_balance_alerted=True):
        alert_admins(f"Low balance at provider {provider.name}",
                     f"Provider {provider.name} refused an order for lack of funds "
                     f"({upstream_message}). Orders routed to it wait and are retried: top it up.")


def _alert_low_balance(provider: Provider, amount: Decimal, currency: str) -> None:
    message = (f"The balance at provider {provider.name} is {amount} {currency}, below the "
               f"threshold of {provider.low_balance_threshold}. Orders routed to it will fail "
               f"with 'not enough funds' once it runs out: top it up.")
    alert_admins(f"Low balance at provider {provider.name}", message)


@dataclass
class ConnectionCheck:
    """What the test-connection button shows: the upstream's balance and catalog size, or
    the exact error (the key scrubbed from it, as the client does for every error)."""

    ok: bool
    balance: Decimal | None = None
    currency: str = ""
    service_count: int | None = None
    error: str = ""


def check_connection(provider: Provider) -> ConnectionCheck:
    """Ask the upstream for its balance and its catalog, through the SSRF-guarded client.
    A saved provider's balance is stored as a balance check would (the catalog waits for a
    sync); an unsaved one (the add form's values) stores nothing."""
    try:
        with provider.client() as client:
            balance = client.balance()
            if provider.pk:
                record_balance(provider, balance)
            services = client.services()
    except ProviderError as exc:
        return ConnectionCheck(ok=False, error=f"{exc.action or 'call'}: {exc.message}")
    except KeyDecryptionError as exc:
        return ConnectionCheck(ok=False, error=str(exc))
    return ConnectionCheck(ok=True, balance=balance.amount, currency=balance.currency or "",
                           service_count=len(services))
