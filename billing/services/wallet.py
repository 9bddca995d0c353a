"""Customer wallets and escrow holds on top of the ledger."""

from django.contrib.auth.models import User

from billing.models import AccountKind, LedgerTransaction
from billing.services.ledger import account_get, ledger_transfer


def wallet_credit(*, user: User, amount_micros: int, key: str, memo: str = "Wallet top-up") -> LedgerTransaction:
    """Money arrived from outside (a settled top-up): gateway clearing → customer wallet."""
    if amount_micros <= 0:
        raise ValueError("a credit is positive")
    clearing = account_get(kind=AccountKind.GATEWAY_CLEARING)
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=user)
    return ledger_transfer(key=key, kind="topup", legs=[(clearing, -amount_micros), (wallet, amount_micros)], memo=memo)


def escrow_hold(*, user: User, amount_micros: int, key: str, memo: str = "") -> LedgerTransaction:
    """Wallet → escrow. Raises InsufficientFunds (402, with the shortfall) when the wallet cannot cover it."""
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=user)
    escrow = account_get(kind=AccountKind.CUSTOMER_ESCROW, user=user)
    return ledger_transfer(
        key=key, kind="escrow_hold", legs=[(wallet, -amount_micros), (escrow, amount_micros)], memo=memo
    )


def escrow_release(*, user: User, amount_micros: int, key: str, memo: str = "") -> LedgerTransaction:
    """Escrow → wallet: return what a job did not use."""
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=user)
    escrow = account_get(kind=AccountKind.CUSTOMER_ESCROW, user=user)
    return ledger_transfer(
        key=key, kind="escrow_release", legs=[(escrow, -amount_micros), (wallet, amount_micros)], memo=memo
    )
