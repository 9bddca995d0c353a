import pytest

from billing.errors import InsufficientFunds, UnbalancedTransaction
from billing.models import AccountKind, Entry, LedgerTransaction
from billing.selectors.ledger import ledger_verify
from billing.services.ledger import Transfer, account_get, ledger_transfer_many
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def accounts():
    user = UserFactory()
    return (
        account_get(kind=AccountKind.GATEWAY_CLEARING),
        account_get(kind=AccountKind.CUSTOMER_WALLET, user=user),
        account_get(kind=AccountKind.CUSTOMER_ESCROW, user=user),
    )


def test_batch_posts_in_order_dedupes_keys_and_replays() -> None:
    clearing, wallet, escrow = accounts()
    batch = [
        Transfer(key="a", kind="topup", legs=[(clearing, -100), (wallet, 100)]),
        Transfer(key="b", kind="hold", legs=[(wallet, -60), (escrow, 60)]),  # needs "a" first in the same batch
        Transfer(key="a", kind="topup", legs=[(clearing, -100), (wallet, 100)]),  # duplicate in batch
    ]
    first = ledger_transfer_many(transfers=batch)
    assert first[0].pk == first[2].pk != first[1].pk
    again = ledger_transfer_many(transfers=batch)
    assert [t.pk for t in again] == [t.pk for t in first]
    wallet.refresh_from_db()
    escrow.refresh_from_db()
    assert (wallet.balance, escrow.balance) == (40, 60)
    assert LedgerTransaction.objects.count() == 2 and Entry.objects.count() == 4
    assert ledger_verify().ok


def test_batch_is_all_or_nothing_when_a_guard_fails() -> None:
    clearing, wallet, escrow = accounts()
    with pytest.raises(InsufficientFunds) as err:
        ledger_transfer_many(
            transfers=[
                Transfer(key="ok", kind="topup", legs=[(clearing, -100), (wallet, 100)]),
                Transfer(key="too-much", kind="hold", legs=[(wallet, -150), (escrow, 150)]),
            ]
        )
    assert err.value.shortfall_micros == 50
    assert LedgerTransaction.objects.count() == 0 and Entry.objects.count() == 0
    wallet.refresh_from_db()
    assert wallet.balance == 0


def test_zero_transfer_is_refused() -> None:
    clearing, wallet, _ = accounts()
    with pytest.raises(UnbalancedTransaction):
        ledger_transfer_many(transfers=[Transfer(key="z", kind="x", legs=[(clearing, 0), (wallet, 0)])])
