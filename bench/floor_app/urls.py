from django.urls import path

from bench.floor_app import views

urlpatterns = [
    path("floor/add", views.floor_add),
    path("floor/status", views.floor_status),
    path("healthz", views.healthz),
]
