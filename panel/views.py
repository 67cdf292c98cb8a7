import json
import logging
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from panel.celery import app as celery_app
from panel.models import ApiKey, User

log = logging.getLogger(__name__)


def panel_context(request: HttpRequest) -> dict[str, Any]:
    return {"panel_name": settings.PANEL_NAME, "panel_currency": settings.PANEL_CURRENCY,
            "signup_enabled": settings.SIGNUP_ENABLED}


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "panel/home.html", {"signup_enabled": settings.SIGNUP_ENABLED})


def terms(request: HttpRequest) -> HttpResponse:
    return render(request, "panel/terms.html")


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        log.warning("healthz: database does not answer", exc_info=True)
        return False


def _broker_answers() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return True
    except Exception:  # any transport error means "not answering"; the log keeps the detail
        log.warning("healthz: broker does not answer", exc_info=True)
        return False


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and container healthchecks: 200 only when both answer."""
    checks = {"database": _database_answers(), "broker": _broker_answers()}
    ok = all(checks.values())
    body = {"status": "ok" if ok else "fail"}
    body.update({name: "ok" if answers else "fail" for name, answers in checks.items()})
    return JsonResponse(body, status=200 if ok else 503)


# --- the customer's API page: their keys and the API v2 reference -----------------------------

MAX_ACTIVE_API_KEYS = 10
# The raw key of a just-created key waits here for the one page view that shows it.
_NEW_KEY_SESSION = "api_new_key"


@dataclass(frozen=True)
class ParamDoc:
    name: str
    description: str
    optional: bool = False


@dataclass(frozen=True)
class ServiceTypeDoc:
    name: str
    params: tuple[ParamDoc, ...]  # besides key, action=add and service
    charged: str  # the quantity the rate (per 1000) applies to


@dataclass(frozen=True)
class ActionDoc:
    anchor: str
    title: str
    action: str
    params: tuple[ParamDoc, ...]  # besides key and action
    example: Any  # the example reply of api-v2.md

    @property
    def example_json(self) -> str:
        return json.dumps(self.example, indent=2, ensure_ascii=False)


_LINK = ParamDoc("link", "Link to page")
_QUANTITY = ParamDoc("quantity", "Needed quantity")
_COMMENTS = ParamDoc("comments", "Comments list separated by \\r\\n or \\n")
_USERNAMES = ParamDoc("usernames", "Usernames list separated by \\r\\n or \\n")
_SUBSCRIPTION_DELAYS = "0, 5, 10, 15, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 360, 420, " \
    "480, 540, 600"

# The parameters of `add` for each of the 14 service types, in the order of orders/params.py
# (panel does not import orders; tests/test_api_page.py checks that the two lists agree).
SERVICE_TYPE_DOCS: tuple[ServiceTypeDoc, ...] = (
    ServiceTypeDoc("Default", (
        _LINK, _QUANTITY,
        ParamDoc("runs", "Runs to deliver (drip-feed; only on services that offer it)", True),
        ParamDoc("interval", "Interval in minutes between runs (drip-feed)", True),
    ), "quantity; with drip-feed, quantity × runs"),
    ServiceTypeDoc("Package", (_LINK,), "flat: the charge is the rate"),
    ServiceTypeDoc("Custom Comments", (_LINK, _COMMENTS), "the number of non-empty comment lines"),
    ServiceTypeDoc("Custom Comments Package", (_LINK, _COMMENTS), "flat: the charge is the rate"),
    ServiceTypeDoc("Mentions with Hashtags", (
        _LINK, _QUANTITY, _USERNAMES,
        ParamDoc("hashtags", "Hashtags list separated by \\r\\n or \\n"),
    ), "quantity"),
    ServiceTypeDoc("Mentions Custom List", (_LINK, _USERNAMES), "the number of usernames"),
    ServiceTypeDoc("Mentions Hashtag", (
        _LINK, _QUANTITY, ParamDoc("hashtag", "Hashtag to scrape usernames from"),
    ), "quantity"),
    ServiceTypeDoc("Mentions User Followers", (
        _LINK, _QUANTITY, ParamDoc("username", "URL to scrape followers from"),
    ), "quantity"),
    ServiceTypeDoc("Mentions Media Likers", (
        _LINK, _QUANTITY, ParamDoc("media", "Media URL to scrape likers from"),
    ), "quantity"),
    ServiceTypeDoc("Subscriptions", (
        ParamDoc("username", "Username"),
        ParamDoc("min", "Quantity min (per post)"),
        ParamDoc("max", "Quantity max (per post)"),
        ParamDoc("posts", "Number of new (future) posts to deliver to: required on this panel, "
                          "so that the charge has a limit"),
        ParamDoc("old_posts", "Number of existing posts to deliver to, where the service "
                              "offers it", True),
        ParamDoc("delay", f"Delay in minutes. Possible values: {_SUBSCRIPTION_DELAYS}"),
        ParamDoc("expiry", "Expiry date, format d/m/Y", True),
    ), "max × (posts + old_posts), paid up front; the undelivered part is refunded"),
    ServiceTypeDoc("Comment Likes", (
        _LINK, _QUANTITY, ParamDoc("username", "Username of the comment owner"),
    ), "quantity"),
    ServiceTypeDoc("Comment Replies", (
        _LINK, ParamDoc("username", "Username"), _COMMENTS,
    ), "the number of comment lines"),
    ServiceTypeDoc("Poll", (
        _LINK, _QUANTITY, ParamDoc("answer_number", "Answer number of the poll"),
    ), "quantity"),
    ServiceTypeDoc("Invites from Groups", (
        _LINK, _QUANTITY, ParamDoc("groups", "Groups list separated by \\r\\n or \\n"),
    ), "quantity"),
)

_ORDER_IDS = ParamDoc("orders", "Order IDs (separated by a comma, up to 100 IDs)")


def _action_docs(currency: str) -> tuple[ActionDoc, ...]:
    """Every action with its parameters and the example reply of api-v2.md."""
    status = {"charge": "0.27819", "start_count": "3572", "status": "Partial", "remains": "157",
              "currency": currency}
    return (
        ActionDoc("services", "Service list", "services", (), [
            {"service": 1, "name": "Followers", "type": "Default", "category": "First Category",
             "rate": "0.90", "min": "50", "max": "10000", "refill": True, "cancel": True},
            {"service": 2, "name": "Comments", "type": "Custom Comments",
             "category": "Second Category", "rate": "8", "min": "10", "max": "1500",
             "refill": False, "cancel": True},
        ]),
        # The type's own parameters follow `service`: SERVICE_TYPE_DOCS.
        ActionDoc("add", "Add order", "add", (ParamDoc("service", "Service ID"),),
                  {"order": 23501}),
        ActionDoc("status", "Order status", "status", (ParamDoc("order", "Order ID"),), status),
        ActionDoc("status-multiple", "Multiple orders status", "status", (_ORDER_IDS,), {
            "1": status, "10": {"error": "Incorrect order ID"},
            "100": {"charge": "1.44219", "start_count": "234", "status": "In progress",
                    "remains": "10", "currency": currency},
        }),
        ActionDoc("refill", "Create refill", "refill", (ParamDoc("order", "Order ID"),),
                  {"refill": "1"}),
        ActionDoc("refill-multiple", "Create multiple refill", "refill", (_ORDER_IDS,), [
            {"order": 1, "refill": 1}, {"order": 2, "refill": 2},
            {"order": 3, "refill": {"error": "Incorrect order ID"}},
        ]),
        ActionDoc("refill-status", "Get refill status", "refill_status",
                  (ParamDoc("refill", "Refill ID"),), {"status": "Completed"}),
        ActionDoc("refill-status-multiple", "Get multiple refill status", "refill_status",
                  (ParamDoc("refills", "Refill IDs (separated by a comma, up to 100 IDs)"),), [
            {"refill": 1, "status": "Completed"}, {"refill": 2, "status": "Rejected"},
            {"refill": 3, "status": {"error": "Refill not found"}},
        ]),
        ActionDoc("cancel", "Create cancel", "cancel", (_ORDER_IDS,), [
            {"order": 9, "cancel": {"error": "Incorrect order ID"}}, {"order": 2, "cancel": 1},
        ]),
        ActionDoc("balance", "User balance", "balance", (),
                  {"balance": "100.84292", "currency": currency}),
    )


API_ERRORS: tuple[str, ...] = (
    "Invalid API key",
    "Incorrect request",
    "Incorrect service ID",
    "Incorrect order ID",
    "Incorrect link",
    "Not enough funds on balance",
    "Quantity less than minimal 50",
    "Quantity more than maximum 10000",
    "Refill not found",
    "Order not eligible for refill",
    "Order not eligible for cancel",
    "You have active order with this link. Please wait until order being completed.",
    "Subscriptions need posts (the number of future posts) so the charge has a limit",
    "Too many requests, please slow down",
)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, required=False,
                           error_messages={"max_length": "A key name has at most 100 characters."})


def _customer(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User), "view must be behind @login_required"
    return user


def _get_api_key_for_customer(request: HttpRequest, pk: int) -> ApiKey:
    """One of the current customer's keys; anybody else's id is a 404 like a missing one."""
    return get_object_or_404(ApiKey.objects.filter(user=_customer(request)), pk=pk)


def _issue_key_within_limit(user: User, name: str) -> tuple[ApiKey, str] | None:
    """A new key for `user`, or None when they already hold MAX_ACTIVE_API_KEYS active keys."""
    with transaction.atomic():
        # Lock the customer's row so that two simultaneous requests cannot both pass the count.
        User.objects.select_for_update().only("pk").get(pk=user.pk)
        if ApiKey.objects.active().filter(user=user).count() >= MAX_ACTIVE_API_KEYS:
            return None
        return ApiKey.issue(user, name)


@never_cache  # the one response that shows a new raw key must not stay in any cache
@login_required
def api_docs(request: HttpRequest) -> HttpResponse:
    keys = list(ApiKey.objects.active().filter(user=_customer(request)))
    context = {
        "endpoint": request.build_absolute_uri("/api/v2"),
        "keys": keys,
        "max_keys": MAX_ACTIVE_API_KEYS,
        "at_key_limit": len(keys) >= MAX_ACTIVE_API_KEYS,
        "new_key": request.session.pop(_NEW_KEY_SESSION, None),
        "form": ApiKeyForm(),
        "actions": _action_docs(settings.PANEL_CURRENCY),
        "service_types": SERVICE_TYPE_DOCS,
        "errors": API_ERRORS,
        "max_ids": 100,
        "rate_limit_per_key": settings.API_RATE_LIMIT_PER_KEY,
        "rate_limit_per_ip": settings.API_RATE_LIMIT_PER_IP,
    }
    return render(request, "panel/api.html", context)


@require_POST
@login_required
def api_key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        for error in form["name"].errors:
            messages.error(request, str(error))
        return redirect(reverse("api_docs") + "#keys")
    issued = _issue_key_within_limit(_customer(request), form.cleaned_data["name"])
    if issued is None:
        messages.error(request, f"You already have {MAX_ACTIVE_API_KEYS} active keys, the "
                                "most allowed: revoke one before creating another.")
        return redirect(reverse("api_docs") + "#keys")
    key, raw = issued
    # Shown by the next page view and gone from the session with it: it is never shown again.
    request.session[_NEW_KEY_SESSION] = {"raw": raw, "name": key.name, "prefix": key.prefix}
    messages.success(request, "Key created. Copy it now: it will not be shown again.")
    return redirect(reverse("api_docs") + "#new-key")


@require_POST
@login_required
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = _get_api_key_for_customer(request, pk)
    key.revoke()
    label = f"“{key.name}” ({key.prefix}…)" if key.name else f"{key.prefix}…"
    messages.success(request, f"Key {label} revoked: it no longer works.")
    return redirect(reverse("api_docs") + "#keys")
