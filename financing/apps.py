from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    verbose_name = "Financing: lenders, upgrade advances, collateral, the repayment waterfall, reserved contracts"

    def ready(self) -> None:
        """Plug financing into billing (which never imports it): the repayment waterfall runs inside billing's
        settlement through the withholding hook, and the financing invariants join billing's ledger check."""
        from billing.selectors.ledger import register_ledger_check
        from billing.services.withholding import WithholdingHook, register_withholding
        from financing.selectors.verify import financing_verify
        from financing.services.advances import (
            advance_withholding_discard,
            advance_withholding_legs,
            advances_lock_for_providers,
        )

        register_withholding(
            WithholdingHook(
                name="financing",
                withhold=advance_withholding_legs,
                lock=advances_lock_for_providers,
                discard=advance_withholding_discard,
            )
        )
        register_ledger_check(name="financing", check=financing_verify)
        from financing.services.applications import financing_upgrade_quote
        from marketplace.services.earnings import register_upgrade_quoter

        register_upgrade_quoter(name="financing", quoter=financing_upgrade_quote)
        from django.contrib.auth.signals import user_logged_in

        from financing.services.parties import party_signal_on_login

        user_logged_in.connect(party_signal_on_login, dispatch_uid="financing-party-signal-login")
        from billing.services.stripe_webhooks import register_webhook_handler
        from financing.services.demand import on_node_verified
        from financing.services.gateway_events import financing_webhook_handle
        from marketplace.signals import node_verified

        register_webhook_handler(name="financing", handler=financing_webhook_handle)
        node_verified.connect(on_node_verified, dispatch_uid="financing-demand-delivery")
        from financing.selectors.risk_flags import provider_risk_flags
        from financing.services.risk import register_risk_flag_source

        register_risk_flag_source(provider_risk_flags)
