from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from providers.forms import HttpsURLField
from providers.models import UNSUPPORTABLE_ACTIONS, Provider, ProviderService, ServiceChange
from providers.sync import confirm_tiny_costs


class ProviderForm(forms.ModelForm[Provider]):
    # Write-only: the stored key is never sent back to the browser, only its mask.
    new_api_key = forms.CharField(
        label="API key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current key.",
    )

    unsupported_actions = forms.TypedMultipleChoiceField(
        label="Unsupported actions", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(a, a) for a in UNSUPPORTABLE_ACTIONS],
        help_text="Actions this provider does not have: refills or cancels of orders bought "
                  "here are then not offered. Learned from its replies; untick to try again.")

    class Meta:
        model = Provider
        fields = ["name", "api_url", "currency", "rate_to_panel", "enabled",
                  "low_balance_threshold", "unsupported_actions"]
        field_classes = {"api_url": HttpsURLField}

    def clean_unsupported_actions(self) -> list[str]:
        return sorted(self.cleaned_data.get("unsupported_actions") or [])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.instance.api_key_encrypted and not data.get("new_api_key"):
            self.add_error("new_api_key", "A new provider needs its API key.")
        return data

    def save(self, commit: bool = True) -> Provider:
        if self.cleaned_data.get("new_api_key"):
            self.instance.api_key = self.cleaned_data["new_api_key"]
        return super().save(commit)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin[Provider]):
    form = ProviderForm
    list_display = ["name", "api_url", "enabled", "buying_paused_at", "unsupported",
                    "balance", "balance_currency", "last_sync_at", "last_sync_ok",
                    "status_batch_size", "cost_mismatches"]
    readonly_fields = ["masked_key", "buying_paused_at", "currency_mismatch",
                       "unsupported_learned", "balance",
                       "balance_currency", "balance_checked_at", "last_sync_at", "last_sync_ok",
                       "last_sync_message", "status_batch_size", "status_latency_ms",
                       "status_timed_out_at", "cost_mismatches", "last_cost_mismatch",
                       "last_cost_mismatch_at"]
    actions = ["resume_buying"]

    @admin.display(description="unsupported actions")
    def unsupported(self, obj: Provider) -> str:
        return ", ".join(obj.unsupported_actions) or "—"

    @admin.action(description="Resume buying (the reason it was paused is dealt with)")
    def resume_buying(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        # The next balance check or status poll pauses it again if the currency still differs.
        for provider in queryset.exclude(buying_paused_at=None):
            reason = provider.currency_mismatch
            provider.resume_buying()
            self.log_change(request, provider, f"Resumed buying, paused because: {reason}")
        self.message_user(request, "Buying resumed; the next balance check verifies the "
                                   "currency and the key again.")


@admin.register(ProviderService)
class ProviderServiceAdmin(admin.ModelAdmin[ProviderService]):
    list_display = ["provider", "upstream_id", "name", "type", "cost_rate", "min_quantity",
                    "max_quantity", "offered", "sold"]
    list_filter = ["provider", "offered", "cost_confirmed", "type"]
    list_select_related = ["provider"]
    search_fields = ["name", "category"]
    actions = ["confirm_tiny_costs"]

    @admin.display(boolean=True, description="cost OK to sell")
    def sold(self, obj: ProviderService) -> bool:
        return not obj.cost_unconfirmed

    @admin.action(description="Confirm tiny costs (checked upstream: zero or below 0.00001 "
                              "per 1000 is the real price)")
    def confirm_tiny_costs(self, request: HttpRequest,
                           queryset: QuerySet[ProviderService]) -> None:
        confirmed = confirm_tiny_costs(list(queryset.select_related("provider")),
                                       str(request.user))
        self.message_user(request, f"{confirmed} tiny cost(s) confirmed: sold again.")

    def save_model(self, request: HttpRequest, obj: ProviderService, form: Any,
                   change: bool) -> None:
        # Ticking the box is a confirmation like the action: logged and priced the same way.
        confirming = change and "cost_confirmed" in form.changed_data and obj.cost_confirmed
        if confirming:
            obj.cost_confirmed = False
        super().save_model(request, obj, form, change)
        if confirming:
            confirm_tiny_costs([obj], str(request.user))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # orders point at these rows


@admin.register(ServiceChange)
class ServiceChangeAdmin(admin.ModelAdmin[ServiceChange]):
    list_display = ["created_at", "provider_service", "field", "old_value", "new_value", "note"]
    list_filter = ["field"]
