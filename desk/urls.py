"""The staff desk, mounted at /staff/ (desk/access.py says who reaches it)."""

from django.urls import path

from desk import admin_urls
from desk.views import alerts, attention, customers, orders, refills, tickets

app_name = "desk"

urlpatterns = [
    path("", attention.queue, name="attention"),
    path("orders/", orders.order_list, name="orders"),
    path("orders/csv/", orders.order_csv, name="orders_csv"),
    path("orders/bulk/", orders.bulk, name="bulk"),
    path("orders/<int:pk>/", orders.order_detail, name="order"),
    path("orders/<int:pk>/action/", orders.order_action, name="order_action"),
    path("refills/", refills.refill_list, name="refills"),
    path("refills/<int:pk>/action/", refills.refill_action, name="refill_action"),
    path("cancels/", refills.cancel_list, name="cancels"),
    path("cancels/<int:pk>/action/", refills.cancel_action, name="cancel_action"),
    path("customers/", customers.customers, name="customers"),
    path("tickets/", tickets.tickets, name="tickets"),
    path("alerts/", alerts.alert_list, name="alerts"),
]

# The admin desk, under /staff/admin/ (desk/admin_urls.py).
urlpatterns += admin_urls.urlpatterns
