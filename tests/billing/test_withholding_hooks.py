"""Billing's withholding hook registry, with a test hook in place of financing's: settlement calls lock once per
batch, withhold per provider share (idempotent key, lease ref), discard for a ledger batch that failed."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User

from billing.models import Account, AccountKind, LedgerTransaction
from billing.services import withholding
from billing.services.ledger import account_get
from billing.services.metering import usage_ingest
from billing.services.settlement import charge_split, provider_share_split, usage_settle_pending
from billing.services.wallet import escrow_release
from billing.services.withholding import WithholdingHook, register_withholding, withholding_take
from tests.billing.helpers import open_lease, report
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@dataclass
class TenthHook:
    """Takes a tenth of each share for one beneficiary (its lender_receivable) and records every call."""

    beneficiary: User
    ratio: tuple[int, int] = (1, 10)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def withhold(
        self, *, provider_user: User, amount_micros: int, source_key: str, lease_ref: int | None
    ) -> list[tuple[Account, int]]:
        self.calls.append(("withhold", (provider_user.pk, amount_micros, source_key, lease_ref)))
        take = amount_micros * self.ratio[0] // self.ratio[1]
        return [(account_get(kind=AccountKind.LENDER_RECEIVABLE, user=self.beneficiary), take)]

    def lock(self, *, provider_ids: set[int]) -> None:
        self.calls.append(("lock", set(provider_ids)))

    def discard(self, *, source_keys: list[str]) -> None:
        self.calls.append(("discard", list(source_keys)))

    def as_hook(self) -> WithholdingHook:
        return WithholdingHook(name="test", withhold=self.withhold, lock=self.lock, discard=self.discard)


@pytest.fixture
def only_hooks() -> Iterator[list[WithholdingHook]]:
    """Run a test with only the hooks it registers (financing's is put back afterwards)."""
    saved = withholding.withholding_hooks()
    for hook in saved:
        withholding.unregister_withholding(name=hook.name)
    yield saved
    for hook in withholding.withholding_hooks():
        withholding.unregister_withholding(name=hook.name)
    for hook in saved:
        register_withholding(hook)


def balance(kind: str, user: User) -> int:
    return account_get(kind=kind, user=user).balance


def test_without_hooks_the_whole_share_goes_to_the_provider(only_hooks: Any) -> None:
    provider = UserFactory()
    legs = provider_share_split(provider_user=provider, amount_micros=1234, source_key="k", lease_ref=1)
    assert [(a.kind, a.owner_id, amt) for a, amt in legs] == [(AccountKind.PROVIDER_PAYABLE, provider.pk, 1234)]


def test_settlement_runs_the_hook_and_credits_the_provider_the_rest(only_hooks: Any) -> None:
    hook = TenthHook(beneficiary=UserFactory())
    register_withholding(hook.as_hook())
    first, second = open_lease(lease_ref=501), open_lease(lease_ref=502)
    usage_ingest(node_id=1, reports=[report(501, 1, 100), report(502, 1, 200)])
    assert usage_settle_pending() == 2

    kinds = [kind for kind, _ in hook.calls]
    assert kinds == ["lock", "withhold", "withhold"]  # one lock for the batch, before any withholding
    assert hook.calls[0][1] == {first.provider.pk, second.provider.pk}
    withheld = 0
    for lease, (_, (provider_id, amount, key, ref)) in zip((first, second), hook.calls[1:], strict=True):
        _, _, share = charge_split(amount_micros=lease.account.price_micros * (100 if ref == 501 else 200) // 3600)
        assert (provider_id, amount, ref) == (lease.provider.pk, share, lease.account.lease_ref)
        assert LedgerTransaction.objects.filter(idempotency_key=key).exists()  # the settlement's own key
        assert balance(AccountKind.PROVIDER_PAYABLE, lease.provider) == share - share // 10
        withheld += share // 10
    assert balance(AccountKind.LENDER_RECEIVABLE, hook.beneficiary) == withheld > 0


def test_a_failed_ledger_batch_is_discarded_then_settled_lease_by_lease(only_hooks: Any) -> None:
    hook = TenthHook(beneficiary=UserFactory())
    register_withholding(hook.as_hook())
    open_lease(lease_ref=601)
    broke = open_lease(lease_ref=602)
    escrow_release(user=broke.customer, amount_micros=broke.hold, key="drain")  # its escrow cannot pay
    usage_ingest(node_id=1, reports=[report(601, 1, 100), report(602, 1, 100)])
    assert usage_settle_pending() == 1

    discards = [arg for kind, arg in hook.calls if kind == "discard"]
    assert len(discards) >= 1 and {k.split(":")[1] for k in discards[0]} == {"601", "602"}
    assert LedgerTransaction.objects.filter(idempotency_key__startswith="settle:601:").exists()
    assert not LedgerTransaction.objects.filter(idempotency_key__startswith="settle:602:").exists()


def test_a_hook_taking_more_than_the_share_is_refused(only_hooks: Any) -> None:
    greedy = TenthHook(beneficiary=UserFactory(), ratio=(11, 10))
    register_withholding(greedy.as_hook())
    with pytest.raises(ValueError, match="took 110 of 100"):
        withholding_take(provider_user=UserFactory(), amount_micros=100, source_key="k")


def test_hooks_run_in_order_each_on_what_is_left(only_hooks: Any) -> None:
    a, b = TenthHook(beneficiary=UserFactory()), TenthHook(beneficiary=UserFactory(), ratio=(1, 2))
    register_withholding(a.as_hook())
    register_withholding(WithholdingHook(name="second", withhold=b.withhold, lock=b.lock, discard=b.discard))
    legs = provider_share_split(provider_user=UserFactory(), amount_micros=1000, source_key="k")
    assert [amt for _, amt in legs] == [1000 - 100 - 450, 100, 450]
    assert b.calls == [("withhold", (legs[0][0].owner_id, 900, "k", None))]
