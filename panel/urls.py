from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from orders import api, openapi
from panel import accounts, views

urlpatterns = [
    # Both spellings answer directly: a redirect turns API clients' POST into a body-less GET.
    path("api/v2", api.api_v2, name="api_v2"),
    path("api/v2/", api.api_v2),
    path("api/v2/openapi.json", openapi.openapi_json, name="api_v2_openapi"),
    path("api/", views.api_docs, name="api_docs"),
    path("api/keys/", views.api_key_create, name="api_key_create"),
    path("api/keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("terms/", views.terms, name="terms"),
    path("accounts/profile/", accounts.profile, name="profile"),
    # allauth: account_login, account_logout, account_signup, account_email,
    # account_change_password, account_reset_password, account_confirm_email, …
    path("accounts/", include("allauth.account.urls")),
    # The old address of the login page, for bookmarks and links already sent.
    path("login/", RedirectView.as_view(pattern_name="account_login", query_string=True),
         name="login"),
    path("admin/", admin.site.urls),
]
