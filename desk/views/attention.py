"""The attention queue: the desk's first page. Orders parked with an unknown outcome and
flagged ones, grouped by provider and hour, each with its reason, age and what the upstream
last said; refills that need a person below them."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from desk.access import desk_view
from desk.queue import grouped, last_route, order_actions, queue_orders, queue_refills


@desk_view("orders")
def queue(request: HttpRequest) -> HttpResponse:
    orders, total = queue_orders()
    for order in orders:
        # What the row's forms need, worked out once here rather than in the template.
        order.desk_actions = order_actions(order)  # type: ignore[attr-defined]
        order.desk_route = last_route(order)  # type: ignore[attr-defined]
    can_refills = request.user.has_perm("desk.refills_cancels")
    return render(request, "desk/attention.html", {
        "groups": grouped(orders), "shown": len(orders), "total": total,
        "refills": queue_refills() if can_refills else [],
        "can_refills": can_refills})
