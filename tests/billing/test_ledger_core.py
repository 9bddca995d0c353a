import pytest

from billing.errors import InsufficientFunds, UnbalancedTransaction
from billing.models import AccountKind, Entry
from billing.selectors.wallet import wallet_balance
from billing.services.ledger import account_get, ledger_transfer
from billing.services.wallet import escrow_hold, escrow_release, wallet_credit
from tests.factories import UserFactory


@pytest.mark.django_db
def test_transfer_is_balanced_and_idempotent() -> None:
    user = UserFactory()
    first = wallet_credit(user=user, amount_micros=5_000_000, key="t1")
    again = wallet_credit(user=user, amount_micros=5_000_000, key="t1")
    assert first.pk == again.pk
    assert wallet_balance(user=user).available_micros == 5_000_000
    assert sum(e.amount for e in Entry.objects.filter(transaction=first)) == 0


@pytest.mark.django_db
def test_guarded_account_cannot_go_negative_and_nothing_is_written() -> None:
    user = UserFactory()
    wallet_credit(user=user, amount_micros=1_000_000, key="t1")
    with pytest.raises(InsufficientFunds) as err:
        escrow_hold(user=user, amount_micros=3_000_000, key="h1")
    assert err.value.shortfall_micros == 2_000_000
    assert "short by $2.00" in err.value.message
    assert wallet_balance(user=user).available_micros == 1_000_000
    assert wallet_balance(user=user).held_micros == 0


@pytest.mark.django_db
def test_hold_and_release() -> None:
    user = UserFactory()
    wallet_credit(user=user, amount_micros=10_000_000, key="t1")
    escrow_hold(user=user, amount_micros=4_000_000, key="h1")
    escrow_release(user=user, amount_micros=1_500_000, key="r1")
    balance = wallet_balance(user=user)
    assert (balance.available_micros, balance.held_micros) == (7_500_000, 2_500_000)


@pytest.mark.django_db
def test_unbalanced_transfer_is_refused() -> None:
    a = account_get(kind=AccountKind.PLATFORM_REVENUE)
    with pytest.raises(UnbalancedTransaction):
        ledger_transfer(key="bad", kind="x", legs=[(a, 5)])
