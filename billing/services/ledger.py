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


def _lock(planned: list[tuple[Transfer, dict[int, int]]]) -> dict[int, dict[str, Any]]:
    pks = sorted({pk for _, deltas in planned for pk in deltas})
    return {
        row["pk"]: dict(row)
        for row in Account.objects.select_for_update()
        .filter(pk__in=pks)
        .order_by("pk")
        .values("pk", "balance", "guarded", "kind")
    }


def _apply_guarded(
    locked: dict[int, dict[str, Any]], to_create: list[tuple[Transfer, dict[int, int]]]
) -> dict[int, int]:
    """New balances after `to_create` in order; InsufficientFunds if a guarded account would go negative."""
    balances = {pk: row["balance"] for pk, row in locked.items()}
    for _, deltas in to_create:
        for pk, delta in deltas.items():
            balance = balances[pk] + delta
            if locked[pk]["guarded"] and balance < 0:
                raise InsufficientFunds(
                    f"{AccountKind(locked[pk]['kind']).label} has {format_usd(micros=balances[pk])}; "
                    f"{format_usd(micros=-delta)} is needed (short by {format_usd(micros=-balance)})",
                    shortfall_micros=-balance,
                )
            balances[pk] = balance
    return {pk: b for pk, b in balances.items() if b != locked[pk]["balance"]}


def _post_generic(planned: list[tuple[Transfer, dict[int, int]]]) -> list[LedgerTransaction]:
    locked = _lock(planned)
    existing = {
        txn.idempotency_key: txn
        for txn in LedgerTransaction.objects.filter(idempotency_key__in=[t.key for t, _ in planned])
    }
    to_create, seen = [], set(existing)
    for t, deltas in planned:
        if t.key not in seen:
            seen.add(t.key)
            to_create.append((t, deltas))
    changed = _apply_guarded(locked, to_create)
    if to_create:
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
        if changed:
            Account.objects.filter(pk__in=list(changed)).update(
                balance=Case(*[When(pk=pk, then=Value(b)) for pk, b in changed.items()], output_field=IntegerField())
            )
        existing.update({txn.idempotency_key: txn for txn in txns})
    return [existing[t.key] for t, _ in planned]


def _post_postgresql(planned: list[tuple[Transfer, dict[int, int]]]) -> list[LedgerTransaction]:
    """Lock accounts, insert new keys (ON CONFLICT DO NOTHING tells which are new), check guards, write
    entries and balances: four statements per batch, each carrying arrays, whatever the batch size."""
    locked = _lock(planned)
    unique: dict[str, tuple[Transfer, dict[int, int]]] = {}
    for t, deltas in planned:
        unique.setdefault(t.key, (t, deltas))
    batch = list(unique.values())
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(LedgerTransaction._meta.db_table)} (idempotency_key, kind, memo, metadata, created_at) "  # noqa: S608
            "SELECT k, t, m, d::jsonb, now() "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS x(k, t, m, d) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key, created_at",
            [
                [t.key for t, _ in batch],
                [t.kind for t, _ in batch],
                [t.memo[:300] for t, _ in batch],
                [json.dumps(t.metadata) for t, _ in batch],
            ],
        )
        inserted = {key: (pk, created) for pk, key, created in cursor.fetchall()}
        to_create = [(t, d) for t, d in batch if t.key in inserted]
        changed = _apply_guarded(locked, to_create)  # raises: the caller's atomic block undoes the insert
        result = {
            t.key: LedgerTransaction(
                id=inserted[t.key][0],
                idempotency_key=t.key,
                kind=t.kind,
                memo=t.memo[:300],
                metadata=t.metadata,
                created_at=inserted[t.key][1],
            )
            for t, _ in to_create
        }
        if len(result) < len(batch):
            result.update(
                {
                    txn.idempotency_key: txn
                    for txn in LedgerTransaction.objects.filter(
                        idempotency_key__in=[k for k in unique if k not in result]
                    )
                }
            )
        if to_create:
            txn_ids, account_ids, amounts = [], [], []
            for t, deltas in to_create:
                for pk, delta in deltas.items():
                    txn_ids.append(inserted[t.key][0])
                    account_ids.append(pk)
                    amounts.append(delta)
            cursor.execute(
                f"INSERT INTO {q(Entry._meta.db_table)} (transaction_id, account_id, amount) "  # noqa: S608
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])",
                [txn_ids, account_ids, amounts],
            )
        if changed:
            cursor.execute(
                f"UPDATE {q(Account._meta.db_table)} AS a SET balance = v.b "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, b) WHERE a.id = v.id",
                [list(changed), list(changed.values())],
            )
    return [result[t.key] for t, _ in planned]


def ledger_transfer_many(*, transfers: Sequence[Transfer]) -> list[LedgerTransaction]:
    """Post a batch atomically (all or nothing); returns one transaction per transfer, in order.

    A key already posted (earlier, or earlier in the batch) returns the first result. If any guarded
    account would go negative, InsufficientFunds is raised and nothing of the batch is written.
    Accounts are locked in primary-key order before anything is checked or written.
    """
    if not transfers:
        return []
    planned = [(t, _deltas(t)) for t in transfers]
    if connection.vendor == "postgresql":
        with transaction.atomic():
            return _post_postgresql(planned)
    with transaction.atomic():
        try:
            with transaction.atomic():
                return _post_generic(planned)
        except IntegrityError:
            # Another connection posted one of these keys between our check and our insert: retry once,
            # now that its commit makes the key visible as existing.
            return _post_generic(planned)


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
