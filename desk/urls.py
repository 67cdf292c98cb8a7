"""The staff desk, mounted at /staff/ (desk/access.py says who reaches it)."""

from django.urls import path

from desk import admin_urls
from desk.views import alerts, attention, customers, orders, payments, refills, tickets

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
    path("customers/<int:pk>/", customers.customer, name="customer"),
    path("customers/<int:pk>/adjust/", customers.customer_adjust, name="customer_adjust"),
    path("customers/<int:pk>/discount/", customers.customer_discount, name="customer_discount"),
    path("customers/<int:pk>/rates/", customers.customer_rate, name="customer_rate"),
    path("customers/<int:pk>/rates/<int:rate_pk>/remove/", customers.customer_rate_remove,
         name="customer_rate_remove"),
    path("customers/<int:pk>/suspend/", customers.customer_suspend, name="customer_suspend"),
    path("customers/<int:pk>/keys/<int:key_pk>/revoke/", customers.customer_key_revoke,
         name="customer_key_revoke"),
    path("tickets/", tickets.tickets, name="tickets"),
    path("tickets/mark/", tickets.tickets_mark, name="tickets_mark"),
    path("tickets/<int:pk>/", tickets.ticket, name="ticket"),
    path("tickets/<int:pk>/reply/", tickets.ticket_reply, name="ticket_reply"),
    path("tickets/<int:pk>/note/", tickets.ticket_note, name="ticket_note"),
    path("tickets/<int:pk>/close/", tickets.ticket_close, name="ticket_close"),
    path("tickets/<int:pk>/orders/", tickets.ticket_orders, name="ticket_orders"),
    path("alerts/", alerts.alert_list, name="alerts"),
    path("payments/", payments.payment_list, name="payments"),
    path("payments/<int:pk>/", payments.payment_detail, name="payment"),
    path("payments/<int:pk>/approve/", payments.payment_approve, name="payment_approve"),
    path("payments/<int:pk>/reject/", payments.payment_reject, name="payment_reject"),
    path("payments/<int:pk>/settle/", payments.payment_settle, name="payment_settle"),
]

# The admin desk, under /staff/admin/ (desk/admin_urls.py).
urlpatterns += admin_urls.urlpatterns
