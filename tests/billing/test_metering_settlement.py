import io
import random

import pytest
from django.core.management import call_command

from billing.models import AccountKind, LeaseAccountStatus, Settlement, UsageRecord, UsageStatus
from billing.selectors.ledger import ledger_verify
from billing.selectors.wallet import wallet_balance
from billing.services.ledger import account_get
from billing.services.metering import usage_ingest
from billing.services.settlement import (
    charge_split,
    lease_account_open,
    lease_settle,
    lease_settle_final,
    rate_gpu_ms,
    usage_settle_pending,
)
from billing.tasks import settle_usage
from common.errors import NotFound, ValidationFailed
from tests.billing.helpers import open_lease, report
from tests.factories import CustomerFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def balance(kind: AccountKind, user=None) -> int:
    return account_get(kind=kind, user=user).balance


def test_ingest_is_exactly_once_under_duplicates_and_reordering() -> None:
    reports = [report(7, seq) for seq in range(20)]
    shuffled = reports * 3
    random.Random(1).shuffle(shuffled)
    assert usage_ingest(node_id=1, reports=shuffled[:30]) + usage_ingest(node_id=1, reports=shuffled[30:]) == 20
    assert usage_ingest(node_id=1, reports=reports) == 0
    assert UsageRecord.objects.count() == 20
    # same lease/seq from another node is another record (it will be excluded at settlement)
    assert usage_ingest(node_id=2, reports=[report(7, 0)]) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"seq": 1, "gpu_seconds": 1},
        report(1, -1),
        report(1, 1, gpu_seconds="abc"),
        report(1, 1, gpu_seconds=-5),
        report(1, 1, gpu_seconds=float("nan")),
        report(1, 1, utilisation=7),
        report(1, 1, interval_start="yesterday"),
        report(1, 1, interval_start="2026-11-27T10:00:15Z", interval_end="2026-11-27T10:00:00Z"),
    ],
)
def test_bad_report_is_refused_and_nothing_written(bad: dict) -> None:
    with pytest.raises(ValidationFailed):
        usage_ingest(node_id=1, reports=[report(1, 0), bad])
    assert UsageRecord.objects.count() == 0


def test_settlement_splits_exactly_and_is_per_second() -> None:
    lease = open_lease(lease_ref=1, price_micros=2_450_000, gpu_count=2)
    usage_ingest(node_id=1, reports=[report(1, s, gpu_seconds="7.5") for s in range(3)])
    usage_ingest(node_id=1, reports=[report(1, 3, gpu_seconds=1)])
    settle_usage.delay()
    acct = lease.account
    acct.refresh_from_db()
    assert acct.rated_gpu_ms == 23_500
    assert acct.charged_micros == rate_gpu_ms(price_micros=2_450_000, gpu_ms=23_500) == 2_450_000 * 23_500 // 3_600_000
    fee, reserve, share = charge_split(amount_micros=acct.charged_micros)
    assert (acct.fee_micros, acct.reserve_micros, acct.provider_micros) == (fee, reserve, share)
    assert fee + reserve + share == acct.charged_micros
    assert balance(AccountKind.PROVIDER_PAYABLE, lease.provider) == share
    assert balance(AccountKind.CUSTOMER_ESCROW, lease.customer) == lease.hold - acct.charged_micros
    assert ledger_verify().ok


def test_cumulative_rating_has_no_drift() -> None:
    lease = open_lease(lease_ref=2, price_micros=1_000_001)
    for seq in range(100):
        usage_ingest(node_id=1, reports=[report(2, seq, gpu_seconds="0.7")])
        lease_settle(lease_ref=2)
    lease.account.refresh_from_db()
    assert lease.account.charged_micros == 1_000_001 * 70_000 // 3_600_000
    assert Settlement.objects.filter(lease_account=lease.account).count() == 100


def test_usage_before_open_is_kept_and_rated_when_account_opens() -> None:
    usage_ingest(node_id=1, reports=[report(3, 0, gpu_seconds=3600)])
    assert usage_settle_pending() == 0
    assert UsageRecord.objects.get().status == UsageStatus.PENDING
    lease = open_lease(lease_ref=3, price_micros=1_000_000)  # on_commit does not fire in a test transaction
    usage_settle_pending()
    assert UsageRecord.objects.get().status == UsageStatus.RATED
    assert balance(AccountKind.CUSTOMER_ESCROW, lease.customer) == lease.hold - 1_000_000


def test_usage_from_another_node_is_excluded_with_reason() -> None:
    open_lease(lease_ref=4, node_id=1)
    usage_ingest(node_id=99, reports=[report(4, 0)])
    usage_settle_pending()
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.EXCLUDED
    assert "node 99" in record.exclusion_reason


def test_charges_never_exceed_the_hold() -> None:
    lease = open_lease(lease_ref=5, price_micros=3_600_000, hold=1_000_000)
    usage_ingest(node_id=1, reports=[report(5, 0, gpu_seconds=10_000)])
    usage_settle_pending()
    lease.account.refresh_from_db()
    assert lease.account.charged_micros == 1_000_000
    assert balance(AccountKind.CUSTOMER_ESCROW, lease.customer) == 0


def test_final_settlement_releases_unused_hold_and_is_idempotent() -> None:
    lease = open_lease(lease_ref=6, price_micros=3_600_000, hold=10_000_000, topup=12_000_000)
    usage_ingest(node_id=1, reports=[report(6, 0, gpu_seconds=2)])  # $0.002
    acct = lease_settle_final(
        lease_ref=6, job_ref=60, customer_user=lease.customer, release_unused_hold_micros=10_000_000, failed=False
    )
    assert acct.status == LeaseAccountStatus.CLOSED
    assert acct.charged_micros == 2_000
    assert acct.released_micros == 10_000_000 - 2_000
    again = lease_settle_final(
        lease_ref=6, job_ref=60, customer_user=lease.customer, release_unused_hold_micros=10_000_000, failed=False
    )
    assert again.released_micros == acct.released_micros
    assert wallet_balance(user=lease.customer).available_micros == 12_000_000 - 2_000
    assert wallet_balance(user=lease.customer).held_micros == 0
    # late usage after close is kept but not charged
    usage_ingest(node_id=1, reports=[report(6, 1, gpu_seconds=100)])
    usage_settle_pending()
    late = UsageRecord.objects.get(seq=1)
    assert late.status == UsageStatus.EXCLUDED and "after the lease closed" in late.exclusion_reason
    assert ledger_verify().ok


def test_final_for_unknown_lease_is_not_found() -> None:
    with pytest.raises(NotFound):
        lease_settle_final(
            lease_ref=404, job_ref=1, customer_user=CustomerFactory().user, release_unused_hold_micros=0, failed=False
        )


def test_open_is_idempotent() -> None:
    customer, provider = CustomerFactory().user, ProviderFactory().user
    kwargs = {"lease_ref": 8, "job_ref": 80, "customer_user": customer, "provider_user": provider}
    kwargs |= {"node_id": 1, "price_micros": 5, "gpu_count": 1, "hold_micros": 0}
    assert lease_account_open(**kwargs).pk == lease_account_open(**kwargs).pk


def test_ledger_check_command_passes_then_fails_on_tampering() -> None:
    open_lease(lease_ref=9)
    usage_ingest(node_id=1, reports=[report(9, 0, gpu_seconds=100)])
    usage_settle_pending()
    out = io.StringIO()
    call_command("ledger_check", stdout=out)
    assert "ledger OK" in out.getvalue() and "transactions sum to zero" in out.getvalue()
    from billing.models import Entry

    entry = Entry.objects.filter(account__kind=AccountKind.PROVIDER_PAYABLE).first()
    Entry.objects.filter(pk=entry.pk).update(amount=entry.amount + 1)
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("ledger_check", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert "VIOLATION" in err.getvalue()
