"""The admin desk, mounted at /staff/admin/ inside the staff desk (names prefixed `admin_`,
in the desk's namespace). Every view here is guarded by desk.access.admin_view: 404 outside
the desk, 403 for staff without the admin area."""

from django.urls import path

from desk.views import admin_catalog, admin_home, admin_providers

urlpatterns = [
    path("admin/", admin_home.dashboard, name="admin_dashboard"),
    # Providers, their sync and their catalog import.
    path("admin/providers/", admin_providers.provider_list, name="admin_providers"),
    path("admin/providers/add/", admin_providers.provider_add, name="admin_provider_add"),
    path("admin/providers/<int:pk>/", admin_providers.provider_detail, name="admin_provider"),
    path("admin/providers/<int:pk>/edit/", admin_providers.provider_edit,
         name="admin_provider_edit"),
    path("admin/providers/<int:pk>/test/", admin_providers.provider_test,
         name="admin_provider_test"),
    path("admin/providers/<int:pk>/sync/", admin_providers.provider_sync,
         name="admin_provider_sync"),
    path("admin/providers/<int:pk>/sync/<int:run_pk>/", admin_providers.sync_status,
         name="admin_sync_status"),
    path("admin/providers/<int:pk>/catalog/", admin_catalog.catalog, name="admin_catalog"),
    path("admin/providers/<int:pk>/catalog/import/", admin_catalog.catalog_import,
         name="admin_catalog_import"),
    # Services and prices, categories, reports: placeholders until their pages land.
    path("admin/services/", admin_home.services, name="admin_services"),
    path("admin/categories/", admin_home.categories, name="admin_categories"),
    path("admin/reports/", admin_home.reports, name="admin_reports"),
]
