"""Financing invariants against billing's ledger; registered with billing's ledger check (financing/apps.py)."""

from django.db.models import Sum

from billing.models import AccountKind, Entry, LedgerTransaction
from financing.models import (
    Advance,
    AdvanceFunding,
    AdvanceRepayment,
    AdvanceStatus,
    LenderPayout,
    LenderPayoutStatus,
)


def _payout_violations() -> list[str]:
    """Every lender payout moved exactly its amount out of the receivable, and a failed one moved it back."""
    out = []
    for p in LenderPayout.objects.all():
        moved = -(
            Entry.objects.filter(
                transaction_id=p.ledger_transaction_id, account__kind=AccountKind.LENDER_RECEIVABLE
            ).aggregate(s=Sum("amount"))["s"]
            or 0
        )
        back = (
            Entry.objects.filter(
                transaction_id=p.reversal_transaction_id, account__kind=AccountKind.LENDER_RECEIVABLE
            ).aggregate(s=Sum("amount"))["s"]
            or 0
        )
        if moved != p.amount_micros or back != (p.amount_micros if p.status == LenderPayoutStatus.FAILED else 0):
            out.append(f"lender payout {p.pk}: moved {moved} and returned {back} of {p.amount_micros}")
    return out


def financing_verify() -> tuple[list[str], list[str]]:
    """Financing invariants against the ledger: (checks run, violations). Run by billing's ledger_verify.

    * every disbursed advance has its disbursement transaction moving exactly the principal out of the funders'
      capital, and its fundings add up to the principal;
    * each advance's repaid amount = its repayment records = what its funders received;
    * every repayment record's source transaction exists and credits lender receivables; in total, lender
      receivable credits = repayment records (what lenders received is exactly what was withheld or paid off);
    * repaid + written off never exceeds principal + fee; a repaid advance has nothing remaining;
    * every lender payout moved its amount out of the receivable once (and back once if it failed).
    """
    violations: list[str] = []
    advances = list(Advance.objects.exclude(status=AdvanceStatus.FUNDING))
    rep_by_adv = dict(
        AdvanceRepayment.objects.values_list("advance_id")
        .annotate(s=Sum("amount_micros"))
        .values_list("advance_id", "s")
    )
    fund_by_adv: dict[int, tuple[int, int]] = {
        row["advance_id"]: (row["a"], row["r"])
        for row in AdvanceFunding.objects.values("advance_id").annotate(
            a=Sum("amount_micros"), r=Sum("received_micros")
        )
    }
    for adv in advances:
        funded, received = fund_by_adv.get(adv.pk, (0, 0))
        if adv.disbursed_at is not None:
            if funded != adv.principal_micros or adv.funded_micros != adv.principal_micros:
                violations.append(f"advance {adv.pk}: fundings {funded} ≠ principal {adv.principal_micros}")
            out = (
                Entry.objects.filter(
                    transaction_id=adv.disbursement_transaction_id, account__kind=AccountKind.LENDER_CAPITAL
                ).aggregate(s=Sum("amount"))["s"]
                or 0
            )
            if -out != adv.principal_micros:
                violations.append(f"advance {adv.pk}: disbursement moved {-out} of capital, not the principal")
        if not adv.repaid_micros == rep_by_adv.get(adv.pk, 0) == received:
            violations.append(f"advance {adv.pk}: repaid, repayment records and funders' receipts differ")
        if adv.repaid_micros + adv.written_off_micros > adv.due_micros:
            violations.append(f"advance {adv.pk}: repaid + written off exceed principal + fee")
        if adv.status == AdvanceStatus.REPAID and adv.remaining_micros != 0:
            violations.append(f"advance {adv.pk}: repaid with {adv.remaining_micros} remaining")
    keys = set(AdvanceRepayment.objects.values_list("source_key", flat=True).distinct())
    posted = set(LedgerTransaction.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True))
    for key in sorted(keys - posted)[:50]:
        violations.append(f"repayment source {key} has no ledger transaction")
    credits = (
        Entry.objects.filter(account__kind=AccountKind.LENDER_RECEIVABLE, amount__gt=0)
        .exclude(transaction__kind="lender_payout_reversal")  # a returned payout is not a new repayment
        .aggregate(s=Sum("amount"))["s"]
        or 0
    )
    violations += _payout_violations()
    recorded = AdvanceRepayment.objects.aggregate(s=Sum("amount_micros"))["s"] or 0
    if credits != recorded:
        violations.append(f"lender receivables were credited {credits} but repayments record {recorded}")
    checks = [
        f"{len(advances)} advances: fundings = principal = disbursed capital; repaid = repayments = funders' receipts; "
        f"lender receivable credits ({credits}) = recorded repayments"
    ]
    return checks, violations
