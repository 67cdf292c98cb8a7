"""Who reaches the staff desk, and which of its areas.

Members of the Staff group and admins (superusers) reach /staff/; anybody else, anonymous
visitors included, gets the same 404 as for a page that does not exist, so the desk's
addresses tell a customer nothing. Inside, each area asks for one of the desk's permissions
(desk.models.AREAS); a member without it gets 403. With STAFF_REQUIRE_MFA on, a member must
have passed a second factor in this session: one without an authenticator is sent to set one
up, one with an authenticator (who came in some way that skipped it) to enter a code."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse

from desk.models import ADMIN_AREA, AREAS
from desk.queue import attention_count
from panel.roles import ADMINS_GROUP, STAFF_GROUP
from payments.models import Payment

View = Callable[..., HttpResponseBase]


def is_desk_member(user: Any) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the user for the request: the layout asks again for the navigation.
    if not hasattr(user, "_desk_member"):
        user._desk_member = user.groups.filter(name__in=(STAFF_GROUP, ADMINS_GROUP)).exists()
    return bool(user._desk_member)


def passed_second_factor(request: HttpRequest) -> bool:
    records = get_authentication_records(request, request.user)  # type: ignore[arg-type]
    return any(record.get("method") == "mfa" for record in records)


def _second_factor_redirect(request: HttpRequest) -> HttpResponse | None:
    """Where a member who has not passed a second factor goes first, or None."""
    if not settings.STAFF_REQUIRE_MFA or passed_second_factor(request):
        return None
    query = urlencode({"next": request.get_full_path()})
    has_totp = Authenticator.objects.filter(user=request.user,  # type: ignore[misc]
                                            type=Authenticator.Type.TOTP).exists()
    target = "mfa_reauthenticate" if has_totp else "mfa_activate_totp"
    return redirect(f"{reverse(target)}?{query}")


def admin_second_factor(get_response: Callable[[HttpRequest], HttpResponseBase]
                        ) -> Callable[[HttpRequest], HttpResponseBase]:
    """Middleware: the Django admin (deposits, prices, providers' keys) asks staff for the
    same second factor as the desk, not just a password."""
    def middleware(request: HttpRequest) -> HttpResponseBase:
        user = getattr(request, "user", None)
        if (settings.STAFF_REQUIRE_MFA and user is not None and user.is_authenticated
                and user.is_staff and request.path.startswith(reverse("admin:index"))):
            detour = _second_factor_redirect(request)
            if detour is not None:
                return detour
        return get_response(request)

    return middleware


def desk_view(permission: str | None) -> Callable[[View], View]:
    """Guard a desk view: 404 for non-members, the second factor, then 403 without
    `permission` (one of AREAS; None for pages every member may see)."""
    if permission is not None and permission not in AREAS:
        raise ValueError(f"unknown desk area {permission!r}")

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not is_desk_member(request.user):
                raise Http404
            detour = _second_factor_redirect(request)
            if detour is not None:
                return detour
            if permission is not None and not request.user.has_perm(f"desk.{permission}"):
                return render(request, "desk/forbidden.html", {"area": permission},
                              status=403)
            return view(request, *args, **kwargs)

        guarded.desk_permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate


def is_admin(user: Any) -> bool:
    """Whether the user reaches the admin desk: superusers, and members granted its area."""
    return is_desk_member(user) and bool(user.has_perm(f"desk.{ADMIN_AREA}"))


def admin_view(view: View) -> View:
    """Guard an admin desk view (/staff/admin/): 404 for anybody outside the desk, the second
    factor, then 403 for staff without the admin area."""
    return desk_view(ADMIN_AREA)(view)


def desk_context(request: HttpRequest) -> dict[str, object]:
    """The navigation's count badges and whether to show the Admin section, on the desk's
    pages only: the attention queue, and for members with the payments area, the payments
    waiting for staff."""
    match = request.resolver_match
    if match is None or match.namespace != "desk" or not is_desk_member(request.user):
        return {}
    context: dict[str, object] = {"desk_attention_count": attention_count(),
                                  "desk_is_admin": is_admin(request.user)}
    if request.user.has_perm("desk.payments"):
        context["desk_payments_count"] = Payment.objects.needing_staff().count()
    return context
