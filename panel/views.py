import logging

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


def panel_context(request: HttpRequest) -> dict[str, object]:
    return {"panel_name": settings.PANEL_NAME, "panel_currency": settings.PANEL_CURRENCY,
            "signup_enabled": settings.SIGNUP_ENABLED,
            # The API page and the order form say what a subscription without posts covers.
            "subscription_default_posts": settings.SUBSCRIPTION_DEFAULT_POSTS}


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


# --- the customer's API keys (the API page itself, with the API v2 reference, is
# orders/apidocs.py: the reference is made from orders' own tables) -----------------------------

MAX_ACTIVE_API_KEYS = 10
# The raw key of a just-created key waits here for the one page view that shows it.
NEW_KEY_SESSION = "api_new_key"


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
    request.session[NEW_KEY_SESSION] = {"raw": raw, "name": key.name, "prefix": key.prefix}
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
