from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from panel.models import ApiKey, LedgerEntry, User


@admin.register(User)
class PanelUserAdmin(UserAdmin[User]):
    list_display = ["username", "email", "balance", "discount_percent", "is_staff", "is_active"]
    readonly_fields = ["balance"]
    search_fields = ["username", "email"]
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Money", {"fields": ("balance",
                                                                     "discount_percent")}))


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin[LedgerEntry]):
    """The ledger is append-only: money moves through panel/ledger.py, not this page."""

    list_display = ["created_at", "user", "kind", "amount", "balance_after", "order_id",
                    "actor", "memo"]
    list_filter = ["kind"]
    search_fields = ["user__username", "=order_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "hashed", "created_at", "last_used_at"]
