"""The admin desk's providers: the list, add and edit, test connection, sync now and the
catalog change log."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from desk.access import admin_view
from providers.models import Provider


@admin_view
def provider_list(request: HttpRequest) -> HttpResponse:
    providers = Provider.objects.order_by("name")
    return render(request, "desk/admin/providers.html", {"providers": providers})
