"""What today goes only to the log or email, listed on the desk too."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from desk.access import desk_view


@desk_view(None)
def alert_list(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/placeholder.html", {"heading": _("Alerts")})
