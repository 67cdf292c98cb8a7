"""The customer's account around django-allauth and django-axes: who may sign up, the terms
box, one lock-out counter per account, the locked-out page, the profile and its time zone.

allauth does sign-up, email verification, login by username or email, password reset and
email change; axes counts failed logins. This module holds only what is ours.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.signals import password_reset
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max, Q
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from panel.models import User, time_zone_names


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(settings.SIGNUP_ENABLED)


class SignupForm(forms.Form):
    """allauth's sign-up form takes these fields on top of username, email and password."""

    terms = forms.BooleanField(
        label=_("I accept the terms of service"),
        error_messages={"required": _("Please accept the terms of service to sign up.")},
    )

    def signup(self, request: HttpRequest, user: User) -> None:
        """allauth calls this once the user is saved; the terms box needs nothing stored."""


# --- guessing protection ---------------------------------------------------------------------

def axes_account_key(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The name axes counts failures under: the account's username whichever way it was
    typed ("alice", "ALICE", "alice@example.com"), so that switching spellings gains an
    attacker nothing. A login that matches no account is counted under what was typed."""
    credentials = credentials or {}
    typed = credentials.get("username") or credentials.get("email") or \
        request.POST.get("login") or request.POST.get("username")
    if not typed:
        return None
    typed = str(typed).strip()
    username = (User.objects.filter(Q(username__iexact=typed) | Q(email__iexact=typed)
                                    | Q(emailaddress__email__iexact=typed))
                .values_list("username", flat=True).first())
    return username if username is not None else typed.lower()


def locked_until(account_key: str | None) -> datetime | None:
    """When the lock on this account ends: the cool-off after its last counted failure."""
    if not account_key:
        return None
    last = AccessAttempt.objects.filter(username=account_key).aggregate(
        last=Max("attempt_time"))["last"]
    return None if last is None else last + settings.AXES_COOLOFF_TIME


def locked_out(request: HttpRequest, original_response: HttpResponse | None,
               credentials: dict[str, Any] | None) -> HttpResponse:
    """axes' lock-out response: a page in the panel's layout that says what happened and when
    to try again (429, so that scripts see a rate limit, not a wrong password)."""
    until = locked_until(axes_account_key(request, credentials))
    minutes = None
    if until is not None:
        minutes = max(1, math.ceil((until - timezone.now()).total_seconds() / 60))
    context = {"until": until, "minutes": minutes,
               "failure_limit": settings.AXES_FAILURE_LIMIT,
               "cooloff_minutes": settings.AXES_COOLOFF_MINUTES}
    return render(request, "account/locked_out.html", context, status=429)


@receiver(password_reset)
def unlock_after_password_reset(sender: Any, request: HttpRequest, user: User,
                                **kwargs: Any) -> None:
    """Whoever could read the account's mail and reset the password is its owner: the lock
    stops guesses at the old password, not them."""
    axes_reset(username=user.get_username())


# --- time zone -------------------------------------------------------------------------------

class TimeZoneMiddleware:
    """Every time on the panel is shown in the logged-in customer's time zone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        name = getattr(user, "time_zone", "") if user is not None else ""
        if name and name in time_zone_names():
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def _grouped_time_zones() -> list[tuple[str, list[tuple[str, str]]]]:
    """The zones grouped by region ("Europe", "America", …) for the profile's select."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(time_zone_names()):
        region = name.split("/", 1)[0] if "/" in name else str(_("Other"))
        groups.setdefault(region, []).append((name, name.replace("_", " ")))
    return sorted(groups.items())


class ProfileForm(forms.ModelForm[User]):
    class Meta:
        model = User
        fields = ["time_zone"]
        labels = {"time_zone": _("Time zone")}
        help_texts = {"time_zone": _("Every date and time on the panel is shown in it.")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].widget = forms.Select(choices=_grouped_time_zones())


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    form = ProfileForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Your profile is saved."))
        return redirect("profile")
    return render(request, "account/profile.html", {"form": form, "now": timezone.now()})
