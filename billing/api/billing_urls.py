from django.urls import URLPattern, URLResolver, path

from billing.api import billing

urlpatterns: list[URLPattern | URLResolver] = [
    path("invoices/", billing.InvoiceListCreateView.as_view(), name="api-invoices"),
    path("invoices/<int:invoice_id>/", billing.InvoiceDetailView.as_view(), name="api-invoice"),
    path("provider/earnings/", billing.ProviderEarningsView.as_view(), name="api-provider-earnings"),
    path("provider/payouts/", billing.ProviderPayoutsView.as_view(), name="api-provider-payouts"),
    path("provider/payout-account/", billing.ProviderPayoutAccountView.as_view(), name="api-provider-payout-account"),
    path("ledger/check/", billing.LedgerCheckView.as_view(), name="api-ledger-check"),
]
