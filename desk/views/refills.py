"""The refill desk and the cancel requests: by state with their age, the staff's actions,
and per service and provider how many were asked and how many went through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from desk import actions
from desk.access import desk_view
from desk.views import redirect_back
from orders.models import Order, Refill
from panel.models import User

PER_PAGE = 50
S = Refill.Status

REFILL_STATES: dict[str, tuple[Any, Q]] = {
    "queued": (gettext_lazy("Queued"), Q(status=S.QUEUED)),
    "sent": (gettext_lazy("Sent"), Q(status__in=[S.SUBMITTING, S.PENDING])),
    "in_progress": (gettext_lazy("In progress"), Q(status=S.IN_PROGRESS)),
    "done": (gettext_lazy("Done"), Q(status=S.COMPLETED)),
    "rejected": (gettext_lazy("Rejected"), Q(status=S.REJECTED)),
    "errored": (gettext_lazy("Errored"), Q(status=S.NEEDS_ATTENTION) | Q(flagged_at__isnull=False)),
}


def _staff(request: HttpRequest) -> User:
    return cast(User, request.user)


def _tabs(rows: QuerySet[Any], states: dict[str, tuple[Any, Q]], current: str
          ) -> list[dict[str, Any]]:
    """Each state's label and count, in one query."""
    counts = rows.aggregate(**{slug: Count("pk", filter=q) for slug, (_, q) in states.items()})
    return [{"slug": slug, "label": label, "count": counts[slug], "current": slug == current}
            for slug, (label, _) in states.items()]


def _state(request: HttpRequest, states: dict[str, Any], default: str) -> str:
    state = request.GET.get("state", default)
    return state if state in states else default


@desk_view("refills_cancels")
def refill_list(request: HttpRequest) -> HttpResponse:
    state = _state(request, REFILL_STATES, "errored")
    refills = (Refill.objects.filter(REFILL_STATES[state][1])
               .select_related("order__service", "order__user", "provider").order_by("created_at"))
    page = Paginator(refills, PER_PAGE).get_page(request.GET.get("page"))
    stats = (Refill.objects.values("order__service__name", "provider__name")
             .annotate(asked=Count("pk"), succeeded=Count("pk", filter=Q(status=S.COMPLETED)),
                       rejected=Count("pk", filter=Q(status=S.REJECTED)))
             .order_by("-asked")[:50])
    return render(request, "desk/refills.html", {
        "tabs": _tabs(Refill.objects.all(), REFILL_STATES, state), "state": state,
        "page": page, "page_query": f"state={state}", "stats": stats})


RefillAction = Callable[[User, Refill, str], bool]
CancelAction = Callable[[User, Order, str], bool]
REFILL_ACTIONS: dict[str, tuple[Any, RefillAction]] = {
    "resend": (gettext_lazy("Send again"), actions.resend_refill),
    "reject": (gettext_lazy("Reject"), actions.reject_refill),
    "done": (gettext_lazy("Mark done"), actions.mark_refill_done),
    "dismiss": (gettext_lazy("Dismiss the flag"), actions.dismiss_refill_flag),
}


@desk_view("refills_cancels")
@require_POST
def refill_action(request: HttpRequest, pk: int) -> HttpResponse:
    refill = get_object_or_404(Refill.objects.select_related("order"), pk=pk)
    action = request.POST.get("action", "")
    if action not in REFILL_ACTIONS:
        raise Http404
    label, run = REFILL_ACTIONS[action]
    reason = request.POST.get("reason", "").strip()[:1000]
    if action == "reject" and not reason:
        messages.error(request, _("Say why: the customer reads the reason."))
    elif run(_staff(request), refill, reason):
        messages.success(request, _("Refill %(id)s: %(action)s done.") % {"id": refill.pk,
                                                                         "action": label})
    else:
        messages.error(request, _("Refill %(id)s: nothing was done, it moved on meanwhile.")
                       % {"id": refill.pk})
    return redirect_back(request, reverse("desk:refills"))


# --- cancels ------------------------------------------------------------------------------

CANCELED = Q(status__in=[Order.Status.CANCELED, Order.Status.PARTIAL])
ASKED = Q(cancel_requested_at__isnull=False) | ~Q(cancel_error="")
CANCEL_STATES: dict[str, tuple[Any, Q]] = {
    "requested": (gettext_lazy("Requested"), Q(cancel_requested_at__isnull=False,
                                               cancel_sent_at__isnull=True, cancel_attempts=0)
                  & ~Q(status__in=Order.TERMINAL)),
    "retrying": (gettext_lazy("Asked again"), Q(cancel_requested_at__isnull=False,
                                                cancel_sent_at__isnull=True,
                                                cancel_attempts__gt=0)
                 & ~Q(status__in=Order.TERMINAL)),
    "sent": (gettext_lazy("Sent"), Q(cancel_sent_at__isnull=False)
             & ~Q(status__in=Order.TERMINAL) & Q(flagged_at__isnull=True)),
    "done": (gettext_lazy("Done"), Q(cancel_requested_at__isnull=False) & CANCELED),
    "refused": (gettext_lazy("Refused"), Q(cancel_requested_at__isnull=True)
                & ~Q(cancel_error="") & Q(flagged_at__isnull=True)),
    "errored": (gettext_lazy("Errored"), ~Q(cancel_error="") & Q(flagged_at__isnull=False)),
}


@desk_view("refills_cancels")
def cancel_list(request: HttpRequest) -> HttpResponse:
    state = _state(request, CANCEL_STATES, "errored")
    asked = Order.objects.filter(ASKED)
    orders = (asked.filter(CANCEL_STATES[state][1])
              .select_related("service", "user", "provider").order_by("cancel_requested_at", "id"))
    page = Paginator(orders, PER_PAGE).get_page(request.GET.get("page"))
    stats = (Order.objects.filter(events__kind="cancel_requested")
             .values("service__name", "provider__name")
             .annotate(asked=Count("pk", distinct=True),
                       succeeded=Count("pk", distinct=True, filter=CANCELED))
             .order_by("-asked")[:50])
    return render(request, "desk/cancels.html", {
        "tabs": _tabs(asked, CANCEL_STATES, state), "state": state, "page": page,
        "page_query": f"state={state}", "stats": stats})


CANCEL_ACTIONS: dict[str, tuple[Any, CancelAction]] = {
    "retry": (gettext_lazy("Send again"), actions.retry_cancel),
    "refuse": (gettext_lazy("Refuse"), actions.refuse_cancel),
    "done": (gettext_lazy("Mark canceled upstream"), actions.cancel_by_hand),
}


@desk_view("refills_cancels")
@require_POST
def cancel_action(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    action = request.POST.get("action", "")
    if action not in CANCEL_ACTIONS:
        raise Http404
    label, run = CANCEL_ACTIONS[action]
    reason = request.POST.get("reason", "").strip()[:1000]
    if action in ("refuse", "done") and not reason:
        messages.error(request, _("Say why: the customer reads it, or money moves."))
    elif run(_staff(request), order, reason):
        messages.success(request, _("Order %(id)s: %(action)s done.") % {"id": order.pk,
                                                                        "action": label})
    else:
        messages.error(request, _("Order %(id)s: nothing was done, it moved on meanwhile.")
                       % {"id": order.pk})
    return redirect_back(request, reverse("desk:cancels"))
