from django.urls import path

from billing.api import wallet

urlpatterns = [
    path("wallet/", wallet.WalletView.as_view(), name="api-wallet"),
    path("wallet/topups/", wallet.TopUpListCreateView.as_view(), name="api-wallet-topups"),
]
