"""The admin desk's front page, and the sections whose pages are still to come."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from desk.access import admin_view


def _placeholder(request: HttpRequest, heading: str) -> HttpResponse:
    return render(request, "desk/admin/placeholder.html", {"heading": heading})


@admin_view
def dashboard(request: HttpRequest) -> HttpResponse:
    return _placeholder(request, _("Admin dashboard"))


@admin_view
def services(request: HttpRequest) -> HttpResponse:
    return _placeholder(request, _("Services and prices"))


@admin_view
def categories(request: HttpRequest) -> HttpResponse:
    return _placeholder(request, _("Categories"))


@admin_view
def reports(request: HttpRequest) -> HttpResponse:
    return _placeholder(request, _("Reports"))
