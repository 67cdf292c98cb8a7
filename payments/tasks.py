"""Thin Celery tasks over payment rows."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from payments import processing


@shared_task(name="payments.tasks.expire_stale_payments")
def expire_stale_payments() -> int:
    return processing.expire_stale(timedelta(hours=settings.PAYMENTS_EXPIRE_HOURS))
