import pytest

from billing.models import AccountKind, SlaCredit, UsageRecord, UsageStatus
from billing.selectors.ledger import ledger_verify
from billing.services.ledger import account_get, ledger_transfer
from billing.services.metering import usage_ingest
from billing.services.settlement import lease_settle_final, usage_settle_pending
from billing.services.sla import SLA_CREDIT_MIN_MICROS, sla_amount, sla_credit_for_failed_lease
from tests.billing.helpers import open_lease, report

pytestmark = pytest.mark.django_db


def seed_reserve(micros: int) -> None:
    ledger_transfer(
        key=f"seed:{micros}",
        kind="test",
        legs=[
            (account_get(kind=AccountKind.PLATFORM_REVENUE), -micros),
            (account_get(kind=AccountKind.RESERVE_FUND), micros),
        ],
    )


def balance(kind: AccountKind, user=None) -> int:
    return account_get(kind=kind, user=user).balance


def test_failed_lease_credit_and_penalty_by_policy_once() -> None:
    seed_reserve(100_000_000)
    lease = open_lease(lease_ref=1, price_micros=36_000_000, hold=100_000_000)
    usage_ingest(node_id=1, reports=[report(1, 0, gpu_seconds=1800), report(1, 1, gpu_seconds=600, state="failed")])
    usage_settle_pending()
    # the failed interval is not charged
    assert UsageRecord.objects.get(seq=1).status == UsageStatus.EXCLUDED
    wallet_before = balance(AccountKind.CUSTOMER_WALLET, lease.customer)
    reserve_before = balance(AccountKind.RESERVE_FUND)
    payable_before = balance(AccountKind.PROVIDER_PAYABLE, lease.provider)
    acct = lease_settle_final(
        lease_ref=1, job_ref=10, customer_user=lease.customer, release_unused_hold_micros=lease.hold, failed=True
    )
    assert acct.charged_micros == 18_000_000
    credit = SlaCredit.objects.get()
    assert credit.credit_micros == credit.penalty_micros == 1_800_000  # 10% of $18
    released = lease.hold - 18_000_000
    assert balance(AccountKind.CUSTOMER_WALLET, lease.customer) == wallet_before + released + 1_800_000
    assert balance(AccountKind.RESERVE_FUND) == reserve_before  # paid the credit, received the penalty
    assert balance(AccountKind.PROVIDER_PAYABLE, lease.provider) == payable_before - 1_800_000
    # idempotent; late usage after the failure is not charged
    assert sla_credit_for_failed_lease(lease_ref=1) == credit.ledger_transaction
    usage_ingest(node_id=1, reports=[report(1, 2, gpu_seconds=900)])
    usage_settle_pending()
    assert UsageRecord.objects.get(seq=2).status == UsageStatus.EXCLUDED
    assert SlaCredit.objects.count() == 1
    assert ledger_verify().ok


def test_minimum_credit_and_caps() -> None:
    assert sla_amount(charged_micros=0) == SLA_CREDIT_MIN_MICROS
    assert sla_amount(charged_micros=55_555) == SLA_CREDIT_MIN_MICROS
    lease = open_lease(lease_ref=2, price_micros=0)  # nothing charged, empty reserve, empty payable
    lease_settle_final(
        lease_ref=2, job_ref=20, customer_user=lease.customer, release_unused_hold_micros=lease.hold, failed=True
    )
    assert not SlaCredit.objects.exists()  # nothing to pay it from: no credit, no negative balance
    assert ledger_verify().ok


def test_ended_lease_gets_no_credit() -> None:
    lease = open_lease(lease_ref=3)
    lease_settle_final(
        lease_ref=3, job_ref=30, customer_user=lease.customer, release_unused_hold_micros=lease.hold, failed=False
    )
    assert sla_credit_for_failed_lease(lease_ref=3) is None
