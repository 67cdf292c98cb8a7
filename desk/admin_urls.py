"""The admin desk, mounted at /staff/admin/ inside the staff desk (names prefixed `admin_`,
in the desk's namespace). Every view here is guarded by desk.access.admin_view: 404 outside
the desk, 403 for staff without the admin area."""

from django.urls import path

from desk.views import admin_home, admin_providers

urlpatterns = [
    path("admin/", admin_home.dashboard, name="admin_dashboard"),
    # Providers, their sync and their catalog import.
    path("admin/providers/", admin_providers.provider_list, name="admin_providers"),
    # Services and prices, categories, reports: placeholders until their pages land.
    path("admin/services/", admin_home.services, name="admin_services"),
    path("admin/categories/", admin_home.categories, name="admin_categories"),
    path("admin/reports/", admin_home.reports, name="admin_reports"),
]
