from django.urls import URLPattern, URLResolver, path

from billing.views import pages
from billing.views.webhooks import StripeWebhookView

urlpatterns: list[URLPattern | URLResolver] = [
    path("webhooks/stripe/", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("app/invoices/", pages.invoices, name="billing-invoices"),
    path("app/invoices/<int:invoice_id>/", pages.invoice_detail, name="billing-invoice"),
    path("provider/earnings/", pages.provider_earnings, name="billing-provider-earnings"),
]
