"""The admin desk's providers: the list, add and edit, test connection, sync now (a Celery
task whose SyncRun row the page polls) and the catalog change log."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from desk.access import admin_view
from desk.models import audit
from orders.models import Order, kick
from panel.models import User
from providers.forms import ProviderForm
from providers.models import Provider, ServiceChange, SyncRun
from providers.sync import ConnectionCheck, check_connection

CHANGES_PER_PAGE = 50


def _providers_with_counts() -> list[Provider]:
    """Every provider with its orders in flight and its offered services, in one query."""
    live = ~Q(orders__status__in=Order.TERMINAL) & Q(orders__isnull=False)
    return list(Provider.objects.annotate(
        in_flight=Count("orders", filter=live, distinct=True),
    ).order_by("name"))


def _admin(request: HttpRequest) -> User:
    return cast(User, request.user)  # admin_view let only a signed-in admin through


@admin_view
def provider_list(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/admin/providers.html",
                  {"providers": _providers_with_counts()})


@admin_view
def provider_add(request: HttpRequest) -> HttpResponseBase:
    form = ProviderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            provider = form.save()
            audit(_admin(request), "provider.add", provider=provider.pk, name=provider.name,
                  url=provider.api_url)
        messages.success(request, _("Provider %(p)s added. Test its connection, then sync "
                                    "its catalog.") % {"p": provider.name})
        return redirect("desk:admin_provider", pk=provider.pk)
    return render(request, "desk/admin/provider_form.html", {"form": form, "provider": None})


@admin_view
def provider_edit(request: HttpRequest, pk: int) -> HttpResponseBase:
    provider = get_object_or_404(Provider, pk=pk)
    form = ProviderForm(request.POST or None, instance=provider)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            audit(_admin(request), "provider.edit", provider=provider.pk,
                  fields=sorted(form.changed_data))
        messages.success(request, _("Provider %(p)s saved.") % {"p": provider.name})
        return redirect("desk:admin_provider", pk=provider.pk)
    return render(request, "desk/admin/provider_form.html",
                  {"form": form, "provider": provider})


@admin_view
def provider_detail(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk)
    changes = Paginator(ServiceChange.objects.filter(provider_service__provider=provider)
                        .select_related("provider_service"), CHANGES_PER_PAGE)
    page = changes.get_page(request.GET.get("page"))
    in_flight = provider.orders.exclude(status__in=Order.TERMINAL).count()
    return render(request, "desk/admin/provider.html", {
        "provider": provider, "changes": page, "page": page, "in_flight": in_flight,
        "run": provider.sync_runs.first(),
        "offered": provider.services.filter(offered=True).count(),
    })


@admin_view
@require_POST
def provider_test(request: HttpRequest, pk: int) -> HttpResponseBase:
    provider = get_object_or_404(Provider, pk=pk)
    check = check_connection(provider)
    if not request.htmx:  # type: ignore[attr-defined]
        if check.ok:
            messages.success(request, _("Connected: balance %(b)s %(c)s, %(n)s services.") % {
                "b": check.balance, "c": check.currency, "n": check.service_count})
        else:
            messages.error(request, _("Connection failed: %(e)s") % {"e": check.error})
        return redirect("desk:admin_provider", pk=provider.pk)
    return render(request, "desk/admin/_connection.html", {"check": check})


@admin_view
@require_POST
def provider_sync(request: HttpRequest, pk: int) -> HttpResponseBase:
    provider = get_object_or_404(Provider, pk=pk)
    provider.sync_runs.give_up_lost()
    # A press while a sync is queued or running shows that one rather than starting another.
    run = provider.sync_runs.unfinished().first()
    if run is None:
        with transaction.atomic():
            run = SyncRun.objects.create(provider=provider, requested_by=_admin(request))
            audit(_admin(request), "provider.sync", provider=provider.pk, run=run.pk)
            transaction.on_commit(lambda: kick("providers.tasks.run_requested_sync", run.pk))
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("desk:admin_provider", pk=provider.pk)
    return render(request, "desk/admin/_sync_run.html", {"provider": provider, "run": run})


@admin_view
def sync_status(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = get_object_or_404(SyncRun.objects.select_related("provider"), pk=run_pk,
                            provider_id=pk)
    return render(request, "desk/admin/_sync_run.html", {"provider": run.provider, "run": run})


@admin_view
@require_POST
def provider_try(request: HttpRequest) -> HttpResponse:
    """Test connection on the add and edit forms: the values typed, before saving (an empty
    key on the edit form means the stored one)."""
    pk = request.POST.get("pk", "")
    saved = Provider.objects.filter(pk=int(pk)).first() if pk.isdigit() else None
    key = request.POST.get("api_key", "").strip() or (saved.api_key if saved else "")
    trial = Provider(name=request.POST.get("name", "") or "new provider",
                     api_url=request.POST.get("api_url", "").strip())
    trial.api_key = key
    check = check_connection(trial) if trial.api_url and key else ConnectionCheck(
        ok=False, error=_("Give the API URL and key first."))
    return render(request, "desk/admin/_connection.html", {"check": check})
