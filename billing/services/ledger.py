"""The ledger's one write path: balanced, idempotent, guarded transfers."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F

from billing.errors import InsufficientFunds, UnbalancedTransaction
from billing.models import GUARDED_KINDS, Account, AccountKind, Entry, LedgerTransaction
from common.money import format_usd

PLATFORM = "platform"


def _owner_key(user: User | None) -> str:
    return PLATFORM if user is None else f"user:{user.pk}"


def account_get(*, kind: AccountKind | str, user: User | None = None, currency: str = "USD") -> Account:
    """The account of `kind` owned by `user` (a system account when `user` is None), created on first use."""
    key = _owner_key(user)
    account = Account.objects.filter(kind=kind, owner_key=key, currency=currency).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return Account.objects.create(
                kind=kind, owner=user, owner_key=key, currency=currency, guarded=kind in GUARDED_KINDS
            )
    except IntegrityError:
        return Account.objects.get(kind=kind, owner_key=key, currency=currency)


def ledger_transfer(
    *,
    key: str,
    kind: str,
    legs: Sequence[tuple[Account, int]],
    memo: str = "",
    metadata: dict[str, Any] | None = None,
) -> LedgerTransaction:
    """Post one balanced transaction; a replay with the same `key` returns the first result.

    `legs` are (account, signed amount) pairs that must sum to zero. Accounts are locked in
    primary-key order; a guarded account that would go negative raises InsufficientFunds and
    nothing is written.
    """
    merged: dict[int, int] = defaultdict(int)
    accounts: dict[int, Account] = {}
    for account, amount in legs:
        if not isinstance(amount, int):
            raise TypeError("ledger amounts are integers (micro-units)")
        merged[account.pk] += amount
        accounts[account.pk] = account
    if sum(merged.values()) != 0:
        raise UnbalancedTransaction(f"entries of {key} sum to {sum(merged.values())}, not zero")
    currencies = {a.currency for a in accounts.values()}
    if len(currencies) > 1:
        raise UnbalancedTransaction("a transaction moves one currency")
    deltas = {pk: amount for pk, amount in merged.items() if amount != 0}

    with transaction.atomic():
        existing = LedgerTransaction.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return existing
        locked = {a.pk: a for a in Account.objects.select_for_update().filter(pk__in=sorted(deltas)).order_by("pk")}
        for pk, delta in deltas.items():
            account = locked[pk]
            if account.guarded and account.balance + delta < 0:
                shortfall = -(account.balance + delta)
                raise InsufficientFunds(
                    f"{account.get_kind_display()} has {format_usd(micros=account.balance)}; "
                    f"{format_usd(micros=-delta)} is needed (short by {format_usd(micros=shortfall)})",
                    shortfall_micros=shortfall,
                )
        try:
            with transaction.atomic():
                txn = LedgerTransaction.objects.create(
                    idempotency_key=key, kind=kind, memo=memo[:300], metadata=metadata or {}
                )
        except IntegrityError:
            return LedgerTransaction.objects.get(idempotency_key=key)
        Entry.objects.bulk_create([Entry(transaction=txn, account_id=pk, amount=delta) for pk, delta in deltas.items()])
        for pk, delta in deltas.items():
            Account.objects.filter(pk=pk).update(balance=F("balance") + delta)
        return txn
