from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from orders import api, apidocs, openapi
from orders.views import history, ordering
from panel import transactions, views

urlpatterns = [
    # Both spellings answer directly: a redirect turns API clients' POST into a body-less GET.
    path("api/v2", api.api_v2, name="api_v2"),
    path("api/v2/", api.api_v2),
    path("api/v2/openapi.json", openapi.openapi_json, name="api_v2_openapi"),
    path("api/", apidocs.api_docs, name="api_docs"),
    path("api/keys/", views.api_key_create, name="api_key_create"),
    path("api/keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("", ordering.new_order, name="home"),
    path("order/services", ordering.service_search, name="service_search"),
    path("order/charge", ordering.order_charge, name="order_charge"),
    path("mass-order/", ordering.mass_order, name="mass_order"),
    path("healthz", views.healthz, name="healthz"),
    # The customer's lists and the pages that follow an order (orders/views/history.py).
    path("services/", history.services, name="services"),
    path("orders/", history.orders, name="orders"),
    path("orders/<int:pk>/", history.order_detail, name="order_detail"),
    path("orders/<int:pk>/refill/", history.order_refill, name="order_refill"),
    path("orders/<int:pk>/cancel/", history.order_cancel, name="order_cancel"),
    path("refills/", history.refill_list, name="refills"),
    path("drip-feed/", history.dripfeed, name="dripfeed"),
    path("subscriptions/", history.subscriptions, name="subscriptions"),
    path("updates/", history.updates, name="updates"),
    path("transactions/", transactions.transactions, name="transactions"),
    path("transactions/csv/", transactions.transactions_csv, name="transactions_csv"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
