from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing: ledger, wallets, metering, settlement, payouts"

    def ready(self) -> None:
        from billing.metrics import billing_metrics
        from common.metrics import register_collector

        register_collector(name="billing", collect=billing_metrics)
