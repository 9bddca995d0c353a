"""Customer wallets and escrow holds on top of the ledger."""

from django.conf import settings
from django.contrib.auth.models import User

from billing.models import AccountKind, LedgerTransaction
from billing.services.ledger import account_get, ledger_transfer
from common.money import format_usd
from notify.models import EventKind
from notify.services.events import notify_event


def low_balance_threshold_micros() -> int:
    """Below this a wallet is low (the wallet API flag, the wallet.low_balance notice): RIGSHIFT_LOW_BALANCE_USD."""
    return int(settings.RIGSHIFT_LOW_BALANCE_USD * 1_000_000)


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
    tx = ledger_transfer(
        key=key, kind="escrow_hold", legs=[(wallet, -amount_micros), (escrow, amount_micros)], memo=memo
    )
    wallet.refresh_from_db(fields=["balance"])
    threshold = low_balance_threshold_micros()
    if wallet.balance < threshold <= wallet.balance + amount_micros:  # this debit crossed the threshold
        notify_event(
            user=user,
            kind=EventKind.WALLET_LOW,
            key=f"wallet-low:{tx.pk}",
            subject=f"Wallet balance is low: {format_usd(micros=wallet.balance)}",
            payload={"balance_micros": wallet.balance, "threshold_micros": threshold},
        )
    return tx


def escrow_release(*, user: User, amount_micros: int, key: str, memo: str = "") -> LedgerTransaction:
    """Escrow → wallet: return what a job did not use."""
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=user)
    escrow = account_get(kind=AccountKind.CUSTOMER_ESCROW, user=user)
    return ledger_transfer(
        key=key, kind="escrow_release", legs=[(escrow, -amount_micros), (wallet, amount_micros)], memo=memo
    )
