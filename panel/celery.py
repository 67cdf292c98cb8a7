"""The Celery app. Tasks only kick work that lives in database rows, so a lost message
loses nothing: the beat sweeps below find every due row again."""

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

app = Celery("panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)
app.autodiscover_tasks()


def _every(seconds: int, task: str) -> dict[str, object]:
    # A sweep that is still queued when the next one is due is useless: let it expire.
    return {"task": task, "schedule": float(seconds), "options": {"expires": seconds * 0.9}}


def _beat_schedule() -> dict[str, dict[str, object]]:
    return {
        "sync-catalogs": _every(
            settings.CATALOG_SYNC_INTERVAL, "providers.tasks.sync_all_catalogs"
        ),
        "check-balances": _every(
            settings.BALANCE_CHECK_INTERVAL, "providers.tasks.check_balances"
        ),
        # The sweeps find what on-commit kicks missed (a lost message, a restarted worker).
        "dispatch-due": _every(settings.SWEEP_INTERVAL, "orders.tasks.dispatch_due"),
        "poll-orders": _every(settings.SWEEP_INTERVAL, "orders.tasks.poll_orders"),
        "send-refills": _every(settings.SWEEP_INTERVAL, "orders.tasks.send_refills"),
        "poll-refills": _every(settings.SWEEP_INTERVAL, "orders.tasks.poll_refills"),
        "send-cancels": _every(settings.SWEEP_INTERVAL, "orders.tasks.send_cancels"),
        "watchdog": _every(60, "orders.tasks.run_watchdog"),
        "purge-form-submissions": _every(86400, "orders.tasks.purge_form_submissions"),
        "expire-stale-payments": _every(3600, "payments.tasks.expire_stale_payments"),
    }


app.conf.beat_schedule = _beat_schedule()
