from django.urls import include, path

urlpatterns = [
    path("", include("billing.api.wallet_urls")),  # wallet, top-ups
    path("", include("billing.api.billing_urls")),  # invoices, payouts, ledger
]
