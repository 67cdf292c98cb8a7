from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        from orders.models import Category, Route, Service
        from providers.sync import catalog_changed

        catalog_changed.connect(_guard_margins, dispatch_uid="orders-margin-guard")
        # What can change a service's price or availability for customers, saved one row at
        # a time (the admin, staff pages, tests); bulk paths call record_service_updates.
        post_save.connect(_service_saved, sender=Service, dispatch_uid="orders-update-service")
        post_save.connect(_category_saved, sender=Category,
                          dispatch_uid="orders-update-category")
        post_save.connect(_route_changed, sender=Route, dispatch_uid="orders-update-route")
        post_delete.connect(_route_changed, sender=Route,
                            dispatch_uid="orders-update-route-deleted")


def _guard_margins(sender: Any, changed_ids: list[int], **kwargs: Any) -> int:
    """Returns how many services the margin guard repriced, for the sync's report."""
    from orders.importing import follow_upstream
    from orders.pricing import guard_margins, record_service_updates, services_routed_to

    repriced = guard_margins(changed_ids)
    # Names, descriptions and bounds follow where the admin allowed it at import.
    follow_upstream(changed_ids)
    # Costs moved (or services vanished upstream): list prices follow; log what customers see.
    record_service_updates(services_routed_to(changed_ids))
    return len(repriced)


def _service_saved(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    from orders.pricing import record_service_updates

    if not raw:
        record_service_updates([instance.pk])


def _category_saved(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    from orders.pricing import record_service_updates

    if not raw:
        record_service_updates(instance.services.values_list("pk", flat=True))


def _route_changed(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    from orders.pricing import record_service_updates

    if not raw:
        record_service_updates([instance.service_id])
