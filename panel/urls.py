from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from orders import api, apidocs, metrics, openapi
from orders.views import history, ordering
from panel import accounts, transactions, views
from support import views as support

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
    path("metrics", metrics.metrics, name="metrics"),  # for Prometheus, with METRICS_TOKEN
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
    path("tickets/", support.ticket_list, name="tickets"),
    path("tickets/new/", support.ticket_new, name="ticket_new"),
    path("tickets/<int:pk>/", support.ticket_detail, name="ticket_detail"),
    path("tickets/<int:pk>/close/", support.ticket_close, name="ticket_close"),
    path("terms/", views.terms, name="terms"),
    path("accounts/profile/", accounts.profile, name="profile"),
    # allauth: account_login, account_logout, account_signup, account_email,
    # account_change_password, account_reset_password, account_confirm_email, …
    path("accounts/", include("allauth.account.urls")),
    # The old address of the login page, for bookmarks and links already sent.
    path("login/", RedirectView.as_view(pattern_name="account_login", query_string=True),
         name="login"),
    path("", include("payments.urls")),
    # The staff desk (desk/): 404 for anybody but staff and admins.
    path("staff/", include("desk.urls")),
    # allauth's second factor (TOTP): set up and entered here, required for staff on the
    # desk by STAFF_REQUIRE_MFA.
    path("accounts/2fa/", include("allauth.mfa.urls")),
    path("admin/", admin.site.urls),
]
