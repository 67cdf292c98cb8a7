"""Payment methods for admins, and a read-only view of payments. Staff decide about payments
on the staff desk (/staff/payments/, desk/payments.py), which writes the desk's audit row; the
actions below, kept for admins, call the same model methods without one."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from panel.models import User
from payments.models import Payment, PaymentEvent, PaymentMethod


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin[PaymentMethod]):
    list_display = ["name", "gateway", "enabled", "sort_order", "min_amount", "max_amount",
                    "fee_percent", "bonus_percent", "bonus_threshold", "new_customers_allowed"]
    list_editable = ["enabled", "sort_order"]
    list_filter = ["gateway", "enabled"]
    fieldsets = (
        (None, {"fields": ("name", "gateway", "enabled", "sort_order")}),
        (_("Amounts"), {"fields": ("min_amount", "max_amount", "fee_percent", "bonus_percent",
                                   "bonus_threshold")}),
        (_("Who and how"), {"fields": ("new_customers_allowed", "instructions")}),
    )


class PaymentEventInline(admin.TabularInline[PaymentEvent, Payment]):
    model = PaymentEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("received_at", "kind", "event_id", "amount", "currency",
                                "outcome", "note", "actor")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin[Payment]):
    """Read-only: states move by verified notifications or by the actions, never by edits."""

    list_display = ["id", "created_at", "user", "method", "amount", "fee", "currency", "state",
                    "credited_amount", "flagged", "customer_reference"]
    list_filter = ["flagged", "state", "gateway"]
    search_fields = ["=id", "user__username", "gateway_id", "intent_id", "customer_reference"]
    inlines = [PaymentEventInline]
    actions = ["approve_selected", "reject_selected", "settle_selected_flags"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewing and the actions below only.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        # The model's change permission stands for "may decide about payments".
        return request.user.has_perm("payments.change_payment")

    def _act(self, request: HttpRequest, payments: QuerySet[Payment], verb: str) -> None:
        actor = request.user
        assert isinstance(actor, User)
        done = 0
        for payment in payments.select_related("method"):
            # As on the desk: an open card or crypto payment waits for its gateway, whose
            # later "expired" could not take back money credited here.
            if verb in ("approve", "reject") and not payment.awaits_staff:
                continue
            if verb == "approve":
                done += payment.approve(actor, note="approved in the admin")
            elif verb == "reject":
                done += payment.reject(actor, "rejected in the admin: the money was not found")
            elif payment.flagged:
                payment.settle_flag(actor, "settled in the admin, no adjustment")
                done += 1
        self.message_user(request, _("%(done)d of %(all)d payment(s): %(verb)s.") % {
            "done": done, "all": len(payments), "verb": verb},
            messages.SUCCESS if done else messages.WARNING)

    @admin.action(description=_("Approve: credit the selected open payments once"),
                  permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        self._act(request, queryset, "approve")

    @admin.action(description=_("Reject the selected open payments"), permissions=["review"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        self._act(request, queryset, "reject")

    @admin.action(description=_("Settle the selected flags (no balance change)"),
                  permissions=["review"])
    def settle_selected_flags(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        self._act(request, queryset, "settle")
