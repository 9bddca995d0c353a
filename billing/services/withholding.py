"""Withholding hooks: how an app above billing takes its part of a provider's share inside a settlement.

Billing imports no app above it. An app that must be repaid out of provider earnings (financing: advances repaid
by withholding) registers a `WithholdingHook` once, from its AppConfig.ready(); settlement then calls, for every
charge it splits (usage settlements, and any caller of settlement.provider_share_split):

* `lock(provider_ids=...)` once per settlement batch, before any `withhold`, so that concurrent settlers take the
  hook's row locks in one global order;
* `withhold(provider_user=..., amount_micros=..., source_key=..., lease_ref=...)` for each provider share: the
  ledger credits the hook takes out of `amount_micros` (none negative; together at most `amount_micros`). It must
  be idempotent per `source_key` (the ledger key of the transaction the legs go into): a second call with the
  same key returns the same legs. What no hook takes goes to the provider payable;
* `discard(source_keys=...)` when a ledger batch whose legs were planned could not be written: the hook undoes
  what it recorded for those keys that are not in the ledger.

Hooks run in registration order, each on what the previous ones left.
"""

from dataclasses import dataclass
from typing import Protocol

from django.contrib.auth.models import User

from billing.models import Account


class WithholdFn(Protocol):
    def __call__(
        self, *, provider_user: User, amount_micros: int, source_key: str, lease_ref: int | None
    ) -> list[tuple[Account, int]]: ...


class LockFn(Protocol):
    def __call__(self, *, provider_ids: set[int]) -> None: ...


class DiscardFn(Protocol):
    def __call__(self, *, source_keys: list[str]) -> None: ...


@dataclass(frozen=True)
class WithholdingHook:
    name: str
    withhold: WithholdFn
    lock: LockFn
    discard: DiscardFn


_hooks: dict[str, WithholdingHook] = {}


def register_withholding(hook: WithholdingHook) -> None:
    """Register `hook` (a hook registered again under the same name replaces the earlier one)."""
    _hooks[hook.name] = hook


def unregister_withholding(*, name: str) -> WithholdingHook | None:
    return _hooks.pop(name, None)


def withholding_hooks() -> list[WithholdingHook]:
    return list(_hooks.values())


def withholding_lock(*, provider_ids: set[int]) -> None:
    if provider_ids:
        for hook in withholding_hooks():
            hook.lock(provider_ids=provider_ids)


def withholding_take(
    *, provider_user: User, amount_micros: int, source_key: str, lease_ref: int | None = None
) -> list[tuple[Account, int]]:
    """The legs every hook takes out of a provider share of `amount_micros` (possibly none)."""
    taken: list[tuple[Account, int]] = []
    left = amount_micros
    for hook in withholding_hooks():
        legs = [
            (account, amount)
            for account, amount in hook.withhold(
                provider_user=provider_user, amount_micros=left, source_key=source_key, lease_ref=lease_ref
            )
            if amount
        ]
        total = sum(amount for _, amount in legs)
        if any(amount < 0 for _, amount in legs) or total > left:
            raise ValueError(f"withholding hook {hook.name!r} took {total} of {left} (or a negative leg)")
        taken += legs
        left -= total
    return taken


def withholding_discard(*, source_keys: list[str]) -> None:
    if source_keys:
        for hook in withholding_hooks():
            hook.discard(source_keys=source_keys)
