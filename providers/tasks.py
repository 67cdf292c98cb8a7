"""Thin Celery tasks: they take ids, load rows and call the sync module."""

from celery import shared_task

from providers import sync
from providers.models import Provider, SyncRun


@shared_task(name="providers.tasks.sync_all_catalogs")
def sync_all_catalogs() -> int:
    ids = list(Provider.objects.filter(enabled=True).values_list("pk", flat=True))
    for provider_id in ids:
        sync_provider_catalog.delay(provider_id)
    return len(ids)


@shared_task(name="providers.tasks.sync_provider_catalog")
def sync_provider_catalog(provider_id: int) -> bool:
    provider = Provider.objects.filter(pk=provider_id, enabled=True).first()
    if provider is None:
        return False
    return sync.sync_catalog(provider).ok


@shared_task(name="providers.tasks.check_balances")
def check_balances() -> None:
    sync.check_balances()


@shared_task(name="providers.tasks.run_requested_sync")
def run_requested_sync(run_id: int) -> bool:
    """A sync asked for from the admin desk: its SyncRun row shows the progress."""
    # Compare-and-set: a duplicate delivery of the task finds the run taken and does nothing.
    if not SyncRun.objects.filter(pk=run_id, phase=SyncRun.Phase.QUEUED).update(
            phase=SyncRun.Phase.FETCHING):
        return False
    run = SyncRun.objects.select_related("provider").get(pk=run_id)
    return sync.sync_catalog(run.provider, run).ok
