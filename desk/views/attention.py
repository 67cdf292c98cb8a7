"""The attention queue: the desk's first page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from desk.access import desk_view


@desk_view("orders")
def queue(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/placeholder.html", {"heading": _("Attention")})
