from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from panel import ledger
from panel.models import ApiKey, LedgerEntry, User
from panel.money import MONEY_DIGITS, MONEY_PLACES, SMALLEST
from panel.templatetags.panel_money import money


class DepositForm(forms.Form):
    """Staff fund a customer by hand until the payment gateways land."""

    amount = forms.DecimalField(label=_("Amount"), min_value=SMALLEST, max_digits=MONEY_DIGITS,
                                decimal_places=MONEY_PLACES)
    memo = forms.CharField(label=_("Memo"), max_length=500,
                           help_text=_("Why, e.g. the bank transfer's reference. Kept in the "
                                       "ledger."))


@admin.register(User)
class PanelUserAdmin(UserAdmin[User]):
    list_display = ["username", "email", "balance", "discount_percent", "is_staff", "is_active"]
    readonly_fields = ["balance"]
    search_fields = ["username", "email"]
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Money", {"fields": ("balance",
                                                                     "discount_percent")}),
                 ("Preferences", {"fields": ("time_zone",)}))

    def get_urls(self) -> list[URLPattern]:
        deposit = path("<int:object_id>/deposit/", self.admin_site.admin_view(self.deposit_view),
                       name="panel_user_deposit")
        return [deposit, *super().get_urls()]

    def deposit_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        customer = self.get_object(request, str(object_id))
        if customer is None:
            raise Http404
        if not self.has_change_permission(request, customer):
            raise PermissionDenied
        form = DepositForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            amount: Decimal = form.cleaned_data["amount"]
            entry = ledger.deposit(customer.pk, amount, actor_id=request.user.pk,
                                   memo=form.cleaned_data["memo"])
            self.message_user(request, _("Deposited %(amount)s to %(user)s; the balance is now "
                                         "%(balance)s.") % {
                "amount": money(amount), "user": customer.username,
                "balance": money(entry.balance_after)}, messages.SUCCESS)
            return redirect(reverse("admin:panel_user_change", args=[customer.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "original": customer, "title": _("Deposit to %s") % customer.username,
                   "balance": money(customer.balance)}
        return TemplateResponse(request, "admin/panel/user/deposit.html", context)


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
