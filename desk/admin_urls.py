"""The admin desk, mounted at /staff/admin/ inside the staff desk (names prefixed `admin_`,
in the desk's namespace). Every view here is guarded by desk.access.admin_view: 404 outside
the desk, 403 for staff without the admin area."""

from django.urls import path

from desk.views import admin_catalog, admin_prices, admin_providers, admin_reports

urlpatterns = [
    path("admin/", admin_reports.dashboard, name="admin_dashboard"),
    # Providers, their sync and their catalog import.
    path("admin/providers/", admin_providers.provider_list, name="admin_providers"),
    path("admin/providers/add/", admin_providers.provider_add, name="admin_provider_add"),
    path("admin/providers/try/", admin_providers.provider_try, name="admin_provider_try"),
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
    # Services and prices.
    path("admin/services/", admin_prices.services, name="admin_services"),
    path("admin/services/bulk/", admin_prices.services_bulk, name="admin_services_bulk"),
    path("admin/services/<int:pk>/", admin_prices.service_edit, name="admin_service"),
    path("admin/services/<int:pk>/routes/", admin_prices.route_add,
         name="admin_service_route_add"),
    path("admin/services/<int:pk>/routes/<int:route_pk>/", admin_prices.route_action,
         name="admin_service_route"),
    path("admin/services/margin-guard/", admin_prices.margin_guard, name="admin_service_guard"),
    path("admin/categories/", admin_prices.categories, name="admin_categories"),
    # Reports and reconciliation.
    path("admin/reports/", admin_reports.reports_page, name="admin_reports"),
    path("admin/reports/csv/<str:table>/", admin_reports.report_csv, name="admin_report_csv"),
    path("admin/reports/reconciliation/", admin_reports.reconciliation,
         name="admin_reconciliation"),
    path("admin/reports/reconciliation/csv/<str:table>/", admin_reports.reconciliation_csv,
         name="admin_reconciliation_csv"),
]
