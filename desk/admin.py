from django.contrib import admin

from desk.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    """The audit trail, to read: rows are written by desk.models.audit() alone."""

    list_display = ["created_at", "actor", "action", "order", "customer", "reason"]
    list_filter = ["action"]
    search_fields = ["actor__username", "customer__username", "reason", "order__id"]
    list_select_related = ["actor", "customer", "order"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
