"""Thin Celery tasks over database rows: each loads what is due and calls a workflow."""

from celery import shared_task

from orders import cancels, dispatch, polling, refills, watchdog
from orders.models import FormSubmission


@shared_task(name="orders.tasks.dispatch_order")
def dispatch_order(order_id: int) -> bool:
    return dispatch.dispatch_one(order_id)


@shared_task(name="orders.tasks.dispatch_orders")
def dispatch_orders(order_ids: list[int]) -> int:
    """The on-commit kicks of a few orders placed together (orders.models.DispatchKicks)."""
    return sum(dispatch.dispatch_one(order_id) for order_id in order_ids)


@shared_task(name="orders.tasks.dispatch_due")
def dispatch_due() -> int:
    return dispatch.dispatch_due()


@shared_task(name="orders.tasks.poll_orders")
def poll_orders() -> int:
    return polling.poll_orders().orders


@shared_task(name="orders.tasks.send_refills")
def send_refills() -> int:
    return refills.send_refills()


@shared_task(name="orders.tasks.poll_refills")
def poll_refills() -> int:
    return polling.poll_refills()


@shared_task(name="orders.tasks.send_cancels")
def send_cancels() -> int:
    return cancels.send_cancels()


@shared_task(name="orders.tasks.purge_form_submissions")
def purge_form_submissions() -> int:
    return FormSubmission.purge()


@shared_task(name="orders.tasks.run_watchdog")
def run_watchdog() -> dict[str, int]:
    return watchdog.run_watchdog()
