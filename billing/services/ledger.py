"""The ledger's one write path: balanced, idempotent, guarded transfers.

`ledger_transfer` posts one transaction; `ledger_transfer_many` posts a batch in one database
transaction with a constant number of queries (settlement and the benchmark use it). Both lock the
touched accounts in primary-key order, re-check idempotency keys after taking the locks, refuse a
guarded account going negative, and write entries and cached balances together.
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, IntegerField, Value, When

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


@dataclass(frozen=True)
class Transfer:
    """One balanced transaction to post: (account, signed micro-amount) legs that sum to zero."""

    key: str
    kind: str
    legs: Sequence[tuple[Account, int]]
    memo: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def _deltas(transfer: Transfer) -> dict[int, int]:
    merged: dict[int, int] = defaultdict(int)
    currencies = set()
    for account, amount in transfer.legs:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("ledger amounts are integers (micro-units)")
        merged[account.pk] += amount
        currencies.add(account.currency)
    if sum(merged.values()) != 0:
        raise UnbalancedTransaction(f"entries of {transfer.key} sum to {sum(merged.values())}, not zero")
    if len(currencies) > 1:
        raise UnbalancedTransaction("a transaction moves one currency")
    deltas = {pk: amount for pk, amount in merged.items() if amount != 0}
    if len(deltas) < 2:
        raise UnbalancedTransaction(f"{transfer.key} moves no money: a transaction needs two non-zero legs")
    return deltas


def _insert(to_create: list[tuple[Transfer, dict[int, int]]]) -> list[LedgerTransaction]:
    """Insert the transactions and their entries: two statements of arrays on PostgreSQL, bulk_create elsewhere."""
    if connection.vendor != "postgresql":
        txns = LedgerTransaction.objects.bulk_create(
            [
                LedgerTransaction(idempotency_key=t.key, kind=t.kind, memo=t.memo[:300], metadata=t.metadata)
                for t, _ in to_create
            ]
        )
        Entry.objects.bulk_create(
            [
                Entry(transaction=txn, account_id=pk, amount=delta)
                for txn, (_, deltas) in zip(txns, to_create, strict=True)
                for pk, delta in deltas.items()
            ]
        )
        return txns
    txn_table = connection.ops.quote_name(LedgerTransaction._meta.db_table)
    entry_table = connection.ops.quote_name(Entry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {txn_table} (idempotency_key, kind, memo, metadata, created_at) "  # noqa: S608
            "SELECT k, t, m, d::jsonb, now() "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS x(k, t, m, d) "
            "RETURNING id, idempotency_key, created_at",
            [
                [t.key for t, _ in to_create],
                [t.kind for t, _ in to_create],
                [t.memo[:300] for t, _ in to_create],
                [json.dumps(t.metadata) for t, _ in to_create],
            ],
        )
        returned = {key: (pk, created) for pk, key, created in cursor.fetchall()}
        txns = [
            LedgerTransaction(
                id=returned[t.key][0],
                idempotency_key=t.key,
                kind=t.kind,
                memo=t.memo[:300],
                metadata=t.metadata,
                created_at=returned[t.key][1],
            )
            for t, _ in to_create
        ]
        txn_ids, account_ids, amounts = [], [], []
        for txn, (_, deltas) in zip(txns, to_create, strict=True):
            for pk, delta in deltas.items():
                txn_ids.append(txn.pk)
                account_ids.append(pk)
                amounts.append(delta)
        cursor.execute(
            f"INSERT INTO {entry_table} (transaction_id, account_id, amount) "  # noqa: S608
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])",
            [txn_ids, account_ids, amounts],
        )
    return txns


def _post(transfers: Sequence[Transfer]) -> list[LedgerTransaction]:
    """Post inside the caller's atomic block; raises IntegrityError if another process took a key meanwhile."""
    planned = [(t, _deltas(t)) for t in transfers]
    pks = sorted({pk for _, deltas in planned for pk in deltas})
    locked = {
        row["pk"]: row
        for row in Account.objects.select_for_update()
        .filter(pk__in=pks)
        .order_by("pk")
        .values("pk", "balance", "guarded", "kind")
    }
    keys = [t.key for t in transfers]
    existing = {txn.idempotency_key: txn for txn in LedgerTransaction.objects.filter(idempotency_key__in=keys)}
    balances = {pk: row["balance"] for pk, row in locked.items()}
    to_create: list[tuple[Transfer, dict[int, int]]] = []
    seen: set[str] = set(existing)
    for t, deltas in planned:
        if t.key in seen:
            continue
        seen.add(t.key)
        for pk, delta in deltas.items():
            balance = balances[pk] + delta
            if locked[pk]["guarded"] and balance < 0:
                kind_label = AccountKind(locked[pk]["kind"]).label
                raise InsufficientFunds(
                    f"{kind_label} has {format_usd(micros=balances[pk])}; {format_usd(micros=-delta)} is needed "
                    f"(short by {format_usd(micros=-balance)})",
                    shortfall_micros=-balance,
                )
            balances[pk] = balance
        to_create.append((t, deltas))
    if to_create:
        txns = _insert(to_create)
        changed = [pk for pk in pks if balances[pk] != locked[pk]["balance"]]
        if changed and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {connection.ops.quote_name(Account._meta.db_table)} AS a SET balance = v.b "  # noqa: S608
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, b) WHERE a.id = v.id",
                    [changed, [balances[pk] for pk in changed]],
                )
        elif changed:
            Account.objects.filter(pk__in=changed).update(
                balance=Case(*[When(pk=pk, then=Value(balances[pk])) for pk in changed], output_field=IntegerField())
            )
        for txn, (t, _) in zip(txns, to_create, strict=True):
            existing[t.key] = txn
    return [existing[t.key] for t in transfers]


def ledger_transfer_many(*, transfers: Sequence[Transfer]) -> list[LedgerTransaction]:
    """Post a batch atomically (all or nothing); returns one transaction per transfer, in order.

    A key already posted (earlier, or earlier in the batch) returns the first result. If any guarded
    account would go negative, InsufficientFunds is raised and nothing of the batch is written.
    """
    if not transfers:
        return []
    with transaction.atomic():
        try:
            with transaction.atomic():
                return _post(transfers)
        except IntegrityError:
            # Another process posted one of these keys between our check and our insert: retry once,
            # now that its transaction committed the key is seen as existing.
            return _post(transfers)


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
    transfer = Transfer(key=key, kind=kind, legs=legs, memo=memo, metadata=metadata or {})
    return ledger_transfer_many(transfers=[transfer])[0]
