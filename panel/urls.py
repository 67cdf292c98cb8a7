from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from orders import api, apidocs, openapi
from orders.views import ordering
from panel import views

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
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
