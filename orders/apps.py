from typing import Any

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        from providers.sync import catalog_changed

        catalog_changed.connect(_guard_margins, dispatch_uid="orders-margin-guard")


def _guard_margins(sender: Any, changed_ids: list[int], **kwargs: Any) -> None:
    from orders.pricing import guard_margins

    guard_margins(changed_ids)
