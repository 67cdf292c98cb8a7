from django.urls import path

from payments import demo_checkout, views

urlpatterns = [
    path("add-funds/", views.add_funds, name="add_funds"),
    path("add-funds/preview", views.add_funds_preview, name="add_funds_preview"),
    path("add-funds/<int:pk>/", views.payment_detail, name="payment_detail"),
    path("add-funds/<int:pk>/status", views.payment_status, name="payment_status"),
    path("payments/webhook/<slug:gateway>/", views.webhook, name="payment_webhook"),
    path("payments/demo/checkout/<str:token>/", demo_checkout.demo_checkout,
         name="demo_checkout"),
]
