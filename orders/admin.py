from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from orders.models import Category, CustomRate, Order, OrderEvent, Refill, Route, Service


class RouteInline(admin.TabularInline[Route, Service]):
    model = Route
    extra = 0
    autocomplete_fields = ["provider_service"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = ["name", "position", "markup_percent"]
    list_editable = ["position", "markup_percent"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin[Service]):
    list_display = ["id", "name", "type", "category", "min_quantity", "max_quantity",
                    "markup_percent", "fixed_rate", "enabled"]
    list_filter = ["enabled", "type", "category"]
    search_fields = ["name"]
    inlines = [RouteInline]


@admin.register(CustomRate)
class CustomRateAdmin(admin.ModelAdmin[CustomRate]):
    list_display = ["user", "service", "rate"]
    autocomplete_fields = ["user", "service"]


class OrderEventInline(admin.TabularInline[OrderEvent, Order]):
    model = OrderEvent
    extra = 0
    can_delete = False
    readonly_fields = ["created_at", "kind", "message", "actor"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    """Read-only: orders change through their workflows, never by editing fields."""

    list_display = ["id", "user", "service", "status", "charge", "refunded", "upstream_id",
                    "flagged_at", "sent_to", "park_phase", "park_http_status", "created_at"]
    list_filter = ["status", "provider", "park_phase", "sent_to"]
    # Read-only anyway; named so the parked order's record shows together.
    readonly_fields = ["sent_to", "parked_at", "park_phase", "park_http_status", "park_reply"]
    search_fields = ["=id", "=upstream_id", "link", "user__username"]
    inlines = [OrderEventInline]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Refill)
class RefillAdmin(admin.ModelAdmin[Refill]):
    list_display = ["id", "order", "user", "status", "upstream_id", "attempts", "error",
                     "flagged_at", "created_at"]
    list_filter = ["status", ("flagged_at", admin.EmptyFieldListFilter)]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
