"""Financing: lenders and their capital, upgrade advances (applications, underwriting, funding, disbursement,
collateral, the repayment waterfall, progress and default) and reserved contracts.

Dependency rule (tests/financing/test_layering.py enforces it on every import, lazy ones included):

    marketplace ← billing ← financing ← broker      (an app imports only the apps to its left)

* financing may import billing and marketplace (and common); it never imports broker.
* billing and marketplace never import financing (nor broker). Where billing must call into financing it offers
  a hook that financing registers in `FinancingConfig.ready()` (financing/apps.py):
  - the repayment waterfall runs inside billing's settlement through `billing.services.withholding`
    (`register_withholding`: the withholding legs of each provider share, the advance locks taken before a
    settlement batch, and the discard of withholding planned for a ledger batch that failed);
  - financing's invariants join billing's ledger check (`billing.selectors.ledger.register_ledger_check`).
* broker may import financing: it picks the node of a reserved contract and holds its capacity
  (broker/services/reserved.py), then calls `financing.services.reserved.reserved_contract_open` for the money.
"""
