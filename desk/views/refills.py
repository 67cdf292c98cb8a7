"""The refill desk and the cancel requests."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from desk.access import desk_view


@desk_view("refills_cancels")
def refill_list(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/placeholder.html", {"heading": _("Refills")})


@desk_view("refills_cancels")
def cancel_list(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/placeholder.html", {"heading": _("Cancels")})
