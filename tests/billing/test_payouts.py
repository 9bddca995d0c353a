from datetime import UTC, datetime

import pytest

from billing.models import AccountKind, Payout, PayoutStatus
from billing.selectors.ledger import ledger_verify
from billing.services.ledger import account_get, ledger_transfer
from billing.services.payouts import payout_create, payout_fail, payout_run
from common.errors import Conflict, ValidationFailed
from tests.factories import ProviderFactory

pytestmark = pytest.mark.django_db
MONDAY = datetime(2026, 11, 23, 9, tzinfo=UTC)
TUESDAY = datetime(2026, 11, 24, 9, tzinfo=UTC)


def earn(user, micros: int, key: str) -> None:
    ledger_transfer(
        key=key,
        kind="test",
        legs=[
            (account_get(kind=AccountKind.PLATFORM_REVENUE), -micros),
            (account_get(kind=AccountKind.PROVIDER_PAYABLE, user=user), micros),
        ],
    )


def payable(user) -> int:
    return account_get(kind=AccountKind.PROVIDER_PAYABLE, user=user).balance


def test_weekly_run_pays_everyone_above_minimum_once_a_day() -> None:
    small, big, tiny = (ProviderFactory().user for _ in range(3))
    earn(small, 5_123_456, "a")
    earn(big, 150_000_000, "b")
    earn(tiny, 999_999, "c")
    # Tuesday: only the one above the $100 threshold
    assert [p.provider for p in payout_run(now=TUESDAY)] == [big]
    # Monday: everyone at or above $1, in whole cents (big has nothing left)
    made = payout_run(now=MONDAY)
    assert [p.provider for p in made] == [small]
    assert made[0].amount_micros == 5_120_000 and made[0].status == PayoutStatus.PAID
    assert payable(small) == 3_456 and payable(tiny) == 999_999
    assert payout_run(now=MONDAY) == []  # the next hourly run: nothing left above the minimum
    assert ledger_verify().ok


def test_payout_guards_and_failure_returns_money() -> None:
    user = ProviderFactory().user
    earn(user, 10_000_000, "x")
    with pytest.raises(Conflict):
        payout_create(provider_user=user, amount_micros=20_000_000)
    with pytest.raises(ValidationFailed):
        payout_create(provider_user=user, amount_micros=1_234)
    payout = payout_create(provider_user=user, amount_micros=4_000_000)
    assert payable(user) == 6_000_000
    failed = payout_fail(payout_id=payout.pk, reason="bank account closed")
    assert failed.status == PayoutStatus.FAILED and failed.failure_reason == "bank account closed"
    assert payable(user) == 10_000_000
    payout_fail(payout_id=payout.pk, reason="again")  # once
    assert payable(user) == 10_000_000
    assert Payout.objects.get().reversal_transaction is not None
    assert ledger_verify().ok
