"""Funding, disbursement, the repayment waterfall inside settlement, early payoff, progress and default policy."""

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db.models import Sum
from django.utils import timezone

from billing.errors import InsufficientFunds
from billing.models import Account, AccountKind, Entry, LedgerTransaction
from billing.selectors.ledger import ledger_verify
from billing.services.metering import usage_ingest
from billing.services.settlement import usage_settle_pending
from common.errors import Conflict, NotFound, ValidationFailed
from common.money import MICROS
from financing.models import Advance, AdvanceEvent, AdvanceFunding, AdvanceRepayment, AdvanceStatus, Collateral
from financing.services.advances import (
    advance_payoff_early,
    advance_review,
    advance_staff_action,
    pro_rata_increments,
)
from financing.services.applications import advance_application_approve, advance_application_submit
from financing.services.lenders import advance_fund, lender_receipts_reinvest
from tests.billing.helpers import open_lease
from tests.factories import GPUModelFactory, NodeFactory
from tests.financing.support import earn, lender, season, staff_user

pytestmark = pytest.mark.django_db


def balance(kind: str, user: Any = None) -> int:
    qs = Account.objects.filter(kind=kind, owner=user)
    return sum(qs.values_list("balance", flat=True))


def approved_advance(*, count: int = 2, lenders: list[Any] | None = None) -> tuple[Advance, Any]:
    model = GPUModelFactory()
    node = season(NodeFactory(gpu_model=model))
    provider = node.provider.user
    earn(provider_user=provider, node_id=node.pk, charge_micros=6_000 * MICROS)
    app = advance_application_submit(provider_user=provider, gpu_model_slug=model.slug, count=count, node_id=node.pk)
    assert app.status == "offered", app.decline_reasons
    advance = advance_application_approve(staff_user=staff_user(), application_id=app.pk)
    for user in lenders or []:
        advance = advance_fund(lender_user=user, advance_id=advance.pk)
    return advance, node


def test_pro_rata_remainder_last_adds_up() -> None:
    f = [AdvanceFunding(amount_micros=a, received_micros=0) for a in (1, 1, 1)]
    inc = pro_rata_increments(fundings=f, principal_micros=3, total_after=100)
    assert inc == [33, 33, 34]


def test_auto_lenders_fund_pro_rata_and_disbursement_is_a_ledger_transaction() -> None:
    a = lender(capital_micros=2_000 * MICROS, mode="auto")
    b = lender(capital_micros=6_000 * MICROS, mode="auto")
    advance, node = approved_advance()
    assert AdvanceFunding.objects.filter(advance=advance, lender=b).exists()
    assert advance.status == AdvanceStatus.ACTIVE and advance.funded_micros == advance.principal_micros
    shares = dict(AdvanceFunding.objects.filter(advance=advance).values_list("lender_id", "amount_micros"))
    # Pro rata to what each can put in: a $2,000 (its capital), b the whole principal (its capital is larger).
    p = advance.principal_micros
    assert shares[a.pk] == p * 2_000 * MICROS // (2_000 * MICROS + p) + 1 or shares[a.pk] == p * 2_000 * MICROS // (
        2_000 * MICROS + p
    )
    assert sum(shares.values()) == advance.principal_micros
    assert balance(AccountKind.LENDER_CAPITAL, a) == 2_000 * MICROS - shares[a.pk]
    txn = LedgerTransaction.objects.get(idempotency_key=f"advance-disburse:{advance.pk}")
    assert txn.entries.aggregate(s=Sum("amount"))["s"] == 0
    assert Collateral.objects.get(advance=advance).node == node  # verified node of the financed model
    assert ledger_verify().ok


def test_hand_picked_lender_funds_and_bad_amounts_refused() -> None:
    a = lender(capital_micros=2_000 * MICROS)
    b = lender(capital_micros=10_000 * MICROS)
    advance, _ = approved_advance()
    assert advance.status == AdvanceStatus.FUNDING
    with pytest.raises(ValidationFailed):
        advance_fund(lender_user=a, advance_id=advance.pk, amount_micros=3_000 * MICROS)  # more than its capital
    advance = advance_fund(lender_user=a, advance_id=advance.pk, amount_micros=1_000 * MICROS)
    assert advance.status == AdvanceStatus.FUNDING
    advance = advance_fund(lender_user=b, advance_id=advance.pk)  # the rest
    assert advance.status == AdvanceStatus.ACTIVE
    with pytest.raises(Conflict):
        advance_fund(lender_user=b, advance_id=advance.pk)


def test_withholding_repays_lenders_pro_rata_then_stops_exactly() -> None:
    a = lender(capital_micros=1_000 * MICROS)
    b = lender(capital_micros=10_000 * MICROS)
    advance, node = approved_advance(lenders=[a, b])
    provider = advance.provider
    payable0 = balance(AccountKind.PROVIDER_PAYABLE, provider)
    ref = earn(provider_user=provider, node_id=node.pk, charge_micros=1_000 * MICROS)
    share = 1_000 * MICROS - 150 * MICROS - 20 * MICROS
    withheld = share * advance.withhold_bps // 10_000
    advance.refresh_from_db()
    assert advance.repaid_micros == withheld
    assert balance(AccountKind.PROVIDER_PAYABLE, provider) - payable0 == share - withheld
    assert balance(AccountKind.LENDER_RECEIVABLE, a) + balance(AccountKind.LENDER_RECEIVABLE, b) == withheld
    # The settlement's single ledger transaction carries the lender legs.
    txn = LedgerTransaction.objects.get(idempotency_key__startswith=f"settle:{ref}:")
    assert Entry.objects.filter(transaction=txn, account__kind=AccountKind.LENDER_RECEIVABLE).count() == 2
    # Earn until repaid: withholding stops by itself, never more than principal + fee.
    while advance.status == AdvanceStatus.ACTIVE:
        earn(provider_user=provider, node_id=node.pk, charge_micros=20_000 * MICROS)
        advance.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID and advance.repaid_micros == advance.due_micros
    fa, fb = AdvanceFunding.objects.filter(advance=advance).order_by("pk")
    assert fa.received_micros == advance.due_micros * fa.amount_micros // advance.principal_micros
    assert fa.received_micros + fb.received_micros == advance.due_micros
    assert balance(AccountKind.LENDER_RECEIVABLE, a) == fa.received_micros
    received = balance(AccountKind.LENDER_RECEIVABLE, a) + balance(AccountKind.LENDER_RECEIVABLE, b)
    earn(provider_user=provider, node_id=node.pk, charge_micros=1_000 * MICROS)
    assert balance(AccountKind.LENDER_RECEIVABLE, a) + balance(AccountKind.LENDER_RECEIVABLE, b) == received
    assert lender_receipts_reinvest(lender_user=a) == fa.received_micros
    assert ledger_verify().ok


def test_batch_retry_after_one_escrow_fails_does_not_double_count() -> None:
    a = lender(capital_micros=10_000 * MICROS)
    advance, node = approved_advance(lenders=[a])
    provider = advance.provider
    good = open_lease(lease_ref=71, price_micros=3_600_000, hold=500 * MICROS, node_id=node.pk, provider=provider)
    bad = open_lease(lease_ref=72, price_micros=3_600_000, hold=1 * MICROS, node_id=node.pk, provider=provider)
    bad.account.hold_micros = 0  # uncapped: its escrow cannot cover the usage
    bad.account.save(update_fields=["hold_micros"])
    usage_ingest(node_id=node.pk, reports=[{"lease_id": 71, "seq": 1, "gpu_seconds": 400_000, "state": "running"}])
    usage_ingest(node_id=node.pk, reports=[{"lease_id": 72, "seq": 1, "gpu_seconds": 400_000, "state": "running"}])
    usage_settle_pending()
    advance.refresh_from_db()
    withheld = AdvanceRepayment.objects.filter(advance=advance).aggregate(s=Sum("amount_micros"))["s"]
    assert withheld == advance.repaid_micros == balance(AccountKind.LENDER_RECEIVABLE, a)
    assert (
        not AdvanceRepayment.objects.filter(lease_ref=72).exists()
        or LedgerTransaction.objects.filter(idempotency_key__startswith="settle:72:").exists()
    )
    # Later the bad lease gets more usage and its customer pays: the stale plan is purged, counted once.
    from billing.services.wallet import escrow_hold, wallet_credit

    wallet_credit(user=bad.customer, amount_micros=1_000 * MICROS, key="late-topup")
    escrow_hold(user=bad.customer, amount_micros=1_000 * MICROS, key="late-hold")
    usage_ingest(node_id=node.pk, reports=[{"lease_id": 72, "seq": 2, "gpu_seconds": 1, "state": "running"}])
    usage_settle_pending()
    advance.refresh_from_db()
    assert advance.repaid_micros == balance(AccountKind.LENDER_RECEIVABLE, a)
    assert good.account.pk
    assert ledger_verify().ok


def test_early_payoff_from_payable() -> None:
    a = lender(capital_micros=10_000 * MICROS)
    advance, node = approved_advance(lenders=[a])
    provider = advance.provider
    from billing.services.payouts import payout_create

    payout_create(provider_user=provider)  # the payable is paid out: nothing left to pay off from
    with pytest.raises(InsufficientFunds):
        advance_payoff_early(provider_user=provider, advance_id=advance.pk)  # payable too small
    assert Advance.objects.get(pk=advance.pk).repaid_micros == 0  # nothing half-written
    earn(provider_user=provider, node_id=node.pk, charge_micros=20_000 * MICROS)
    advance.refresh_from_db()
    with pytest.raises(ValidationFailed):
        advance_payoff_early(provider_user=provider, advance_id=advance.pk, amount_micros=advance.due_micros + 1)
    with pytest.raises(NotFound):
        advance_payoff_early(provider_user=node.provider.user.__class__(pk=-1), advance_id=advance.pk)
    advance = advance_payoff_early(provider_user=provider, advance_id=advance.pk)
    assert advance.status == AdvanceStatus.REPAID
    assert balance(AccountKind.LENDER_RECEIVABLE, a) == advance.due_micros
    assert ledger_verify().ok


def test_progress_shortfalls_delinquent_then_defaulted(settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.ADMINS = [("Staff", "staff@rigshift.test")]
    a = lender(capital_micros=10_000 * MICROS)
    advance, node = approved_advance(lenders=[a])
    t0 = advance.disbursed_at
    assert t0 is not None
    with django_capture_on_commit_callbacks(execute=True):
        advance = advance_review(advance_id=advance.pk, now=t0 + timedelta(days=61))
    assert advance.consecutive_shortfalls == 1 and advance.status == AdvanceStatus.ACTIVE
    assert AdvanceEvent.objects.filter(advance=advance, kind="shortfall").count() == 1
    recipients = {r for m in mail.outbox for r in m.to}
    assert {advance.provider.email, a.email, "staff@rigshift.test"} <= recipients
    advance = advance_review(advance_id=advance.pk, now=t0 + timedelta(days=121))
    assert advance.status == AdvanceStatus.DELINQUENT and advance.withhold_bps == advance.base_withhold_bps + 1000
    # Delinquent: a higher share is withheld.
    before = advance.repaid_micros
    earn(provider_user=advance.provider, node_id=node.pk, charge_micros=1_000 * MICROS)
    advance.refresh_from_db()
    assert advance.repaid_micros - before == 830 * MICROS * advance.withhold_bps // 10_000
    advance = advance_review(advance_id=advance.pk, now=t0 + timedelta(days=181))
    assert advance.status == AdvanceStatus.DEFAULTED
    assert advance.written_off_micros == advance.due_micros - advance.repaid_micros > 0
    repaid = advance.repaid_micros
    earn(provider_user=advance.provider, node_id=node.pk, charge_micros=1_000 * MICROS)
    assert Advance.objects.get(pk=advance.pk).repaid_micros == repaid  # withholding stopped
    assert ledger_verify().ok


def test_met_minimum_cures_and_collateral_offline_policy() -> None:
    from marketplace.models import NodeStatus

    a = lender(capital_micros=10_000 * MICROS)
    advance, node = approved_advance(lenders=[a])
    t0 = advance.disbursed_at
    assert t0 is not None
    advance_staff_action(staff_user=staff_user(), advance_id=advance.pk, action="delinquent", note="test")
    earn(provider_user=advance.provider, node_id=node.pk, charge_micros=5_000 * MICROS)
    advance = advance_review(advance_id=advance.pk, now=t0 + timedelta(days=61))
    assert advance.status == AdvanceStatus.ACTIVE and advance.withhold_bps == advance.base_withhold_bps
    node.status = NodeStatus.OFFLINE
    node.save(update_fields=["status"])
    advance = advance_review(advance_id=advance.pk, now=t0 + timedelta(days=62))
    assert advance.collateral_offline_since is not None
    advance = advance_review(advance_id=advance.pk, now=t0 + timedelta(days=62 + 15))
    assert advance.status == AdvanceStatus.DELINQUENT
    advance = advance_review(advance_id=advance.pk, now=t0 + timedelta(days=62 + 46))
    assert advance.status == AdvanceStatus.DEFAULTED


def test_staff_action_rules() -> None:
    advance, _ = approved_advance(lenders=[lender(capital_micros=10_000 * MICROS)])
    staff = staff_user()
    with pytest.raises(Conflict):
        advance_staff_action(staff_user=staff, advance_id=advance.pk, action="cure")
    with pytest.raises(ValidationFailed):
        advance_staff_action(staff_user=staff, advance_id=advance.pk, action="explode")
    advance = advance_staff_action(staff_user=staff, advance_id=advance.pk, action="default")
    assert advance.status == AdvanceStatus.DEFAULTED and advance.closed_at is not None
    assert timezone.now() >= advance.closed_at


def test_ledger_check_catches_financing_tampering() -> None:
    a = lender(capital_micros=10_000 * MICROS)
    advance, node = approved_advance(lenders=[a])
    earn(provider_user=advance.provider, node_id=node.pk, charge_micros=1_000 * MICROS)
    report = ledger_verify()
    assert report.ok and any("advances" in c for c in report.checks)
    Advance.objects.filter(pk=advance.pk).update(repaid_micros=1)
    report = ledger_verify()
    assert any(f"advance {advance.pk}: repaid" in v for v in report.violations)
