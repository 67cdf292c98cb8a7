"""The staff desk, mounted at /staff/ (desk/access.py says who reaches it)."""

from django.urls import path

from desk.views import alerts, attention, customers, orders, refills, tickets

app_name = "desk"

urlpatterns = [
    path("", attention.queue, name="attention"),
    path("orders/", orders.order_list, name="orders"),
    path("orders/<int:pk>/", orders.order_detail, name="order"),
    path("refills/", refills.refill_list, name="refills"),
    path("cancels/", refills.cancel_list, name="cancels"),
    path("customers/", customers.customers, name="customers"),
    path("tickets/", tickets.tickets, name="tickets"),
    path("alerts/", alerts.alert_list, name="alerts"),
]
