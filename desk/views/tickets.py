"""Support tickets, the staff side. Not built yet (issue 11)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from desk.access import desk_view


@desk_view("tickets")
def tickets(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/placeholder.html", {"heading": _("Tickets")})
