from dataclasses import dataclass

from django.contrib.auth.models import User

from billing.models import Account, AccountKind, Entry


@dataclass(frozen=True)
class WalletBalance:
    available_micros: int
    held_micros: int


def wallet_balance(*, user: User) -> WalletBalance:
    balances = dict(
        Account.objects.filter(
            owner_key=f"user:{user.pk}", kind__in=[AccountKind.CUSTOMER_WALLET, AccountKind.CUSTOMER_ESCROW]
        ).values_list("kind", "balance")
    )
    return WalletBalance(
        available_micros=balances.get(AccountKind.CUSTOMER_WALLET, 0),
        held_micros=balances.get(AccountKind.CUSTOMER_ESCROW, 0),
    )


def wallet_entries(*, user: User, limit: int = 20) -> list[Entry]:
    return list(
        Entry.objects.filter(account__owner_key=f"user:{user.pk}", account__kind=AccountKind.CUSTOMER_WALLET)
        .select_related("transaction")
        .order_by("-transaction__created_at", "-id")[:limit]
    )
