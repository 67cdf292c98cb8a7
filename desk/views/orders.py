"""Every customer's orders, and one order's page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from desk.access import desk_view


@desk_view("orders")
def order_list(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/placeholder.html", {"heading": _("Orders")})


@desk_view("orders")
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "desk/placeholder.html", {"heading": _("Order")})
