"""Ledger integrity: recompute everything from the entries and check every invariant.

Apps above billing add their own invariants with `register_ledger_check(name=..., check=...)` (from their
AppConfig.ready(); financing registers its advances/fundings/repayments check): `check()` returns
(checks run, violations) and `ledger_verify` reports both with billing's own.
"""

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from billing.models import (
    Account,
    AccountKind,
    Entry,
    LeaseAccount,
    LedgerTransaction,
    Payout,
    PayoutStatus,
    Settlement,
    UsageAnomaly,
    UsageAnomalyKind,
    UsageRecord,
    UsageStatus,
)

MAX_LISTED = 50


def _check_broker_clock(*, report: "LedgerReport", acct: Mapping[str, Any]) -> None:
    """THE RULE (services/metering.py): billed GPU-ms ≤ claimed and ≤ observed; GPU charges ≤ observed time's cost."""
    observed = 0
    if acct["active_from"] is not None and acct["seen_until"] is not None:
        until = acct["seen_until"] if acct["period_end"] is None else min(acct["seen_until"], acct["period_end"])
        observed = acct["gpu_count"] * max(0, int((until - acct["active_from"]).total_seconds() * 1000))
    if acct["rated_gpu_ms"] > observed or acct["rated_gpu_ms"] > acct["claimed_gpu_ms"]:
        report.violate(
            f"lease {acct['lease_ref']}: billed {acct['rated_gpu_ms']} GPU-ms, beyond the broker-observed {observed} "
            f"or the claimed {acct['claimed_gpu_ms']}"
        )
    gpu_charged = acct["charged_micros"] - acct["charged_storage_micros"] - acct["charged_egress_micros"]
    if gpu_charged > acct["price_micros"] * observed // 3_600_000:
        report.violate(
            f"lease {acct['lease_ref']}: charged {gpu_charged} for GPU time beyond its observed running time"
        )


LedgerCheck = Callable[[], tuple[list[str], list[str]]]
_extra_checks: dict[str, LedgerCheck] = {}


def register_ledger_check(*, name: str, check: LedgerCheck) -> None:
    """Add an app's invariant check to `ledger_verify` (registering a name again replaces its check)."""
    _extra_checks[name] = check


@dataclass
class LedgerReport:
    accounts: int = 0
    transactions: int = 0
    entries: int = 0
    lease_accounts: int = 0
    settlements: int = 0
    usage_records: int = 0
    payouts: int = 0
    checks: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def violate(self, message: str) -> None:
        if len(self.violations) < MAX_LISTED:
            self.violations.append(message)
        elif len(self.violations) == MAX_LISTED:
            self.violations.append("… more violations not listed")


def _verify_transactions(report: LedgerReport) -> None:
    """Every transaction has ≥ 2 entries summing to zero, in one currency."""
    report.transactions = LedgerTransaction.objects.count()
    report.entries = Entry.objects.count()
    bad = LedgerTransaction.objects.annotate(
        n=Count("entries"),
        total=Coalesce(Sum("entries__amount"), 0),
        currencies=Count("entries__account__currency", distinct=True),
    ).filter(Q(n__lt=2) | ~Q(total=0) | Q(currencies__gt=1))
    for txn in bad.values("idempotency_key", "n", "total", "currencies")[: MAX_LISTED + 1]:
        report.violate(
            f"transaction {txn['idempotency_key']}: {txn['n']} entries summing to {txn['total']} "
            f"in {txn['currencies']} currencies"
        )
    report.checks.append(f"{report.transactions} transactions sum to zero with ≥2 entries ({report.entries} entries)")


def _verify_balances(report: LedgerReport) -> None:
    """Cached balances equal the recomputed ones; guarded accounts are not negative."""
    sums = dict(Entry.objects.values_list("account_id").annotate(s=Sum("amount")).values_list("account_id", "s"))
    for pk, kind, owner_key, balance, guarded in Account.objects.values_list(
        "pk", "kind", "owner_key", "balance", "guarded"
    ):
        report.accounts += 1
        recomputed = sums.get(pk, 0) or 0
        if recomputed != balance:
            report.violate(f"account {kind}:{owner_key} caches {balance} but its entries sum to {recomputed}")
        if guarded and recomputed < 0:
            report.violate(f"guarded account {kind}:{owner_key} is negative ({recomputed})")
    report.checks.append(f"{report.accounts} account balances recomputed from entries; guarded ones non-negative")


def _verify_leases(report: LedgerReport) -> None:
    """Each lease's charges split exactly into fee + reserve + provider share and match its settlements, whose
    ledger transactions move exactly those amounts."""
    _verify_lease_charges(report)
    _verify_metering(report)
    _verify_settlement_legs(report)


def _verify_lease_charges(report: LedgerReport) -> None:
    """Charges = fee + reserve + provider share = the lease's settlements; rated usage = the lease's totals."""
    report.lease_accounts = LeaseAccount.objects.count()
    for ref in LeaseAccount.objects.exclude(
        charged_micros=F("fee_micros") + F("reserve_micros") + F("provider_micros")
    ).values_list("lease_ref", flat=True)[:MAX_LISTED]:
        report.violate(f"lease {ref}: charged ≠ fee + reserve + provider share")
    totals = {
        row["lease_account"]: row
        for row in Settlement.objects.values("lease_account").annotate(
            c=Sum("charged_micros"), f=Sum("fee_micros"), r=Sum("reserve_micros"), p=Sum("provider_micros")
        )
    }
    rated = {
        ref: (ms, gb_ms, egress)
        for ref, ms, gb_ms, egress in UsageRecord.objects.filter(status=UsageStatus.RATED)
        .values_list("lease_ref")
        .annotate(ms=Sum("gpu_ms"), gb_ms=Sum("storage_gb_ms"), egress=Sum("egress_bytes"))
        .values_list("lease_ref", "ms", "gb_ms", "egress")
    }
    for acct in LeaseAccount.objects.values(
        "pk",
        "lease_ref",
        "claimed_gpu_ms",
        "charged_micros",
        "fee_micros",
        "reserve_micros",
        "provider_micros",
        "rated_gpu_ms",
        "rated_storage_gb_ms",
        "rated_egress_bytes",
    ):
        row = totals.get(acct["pk"], {"c": 0, "f": 0, "r": 0, "p": 0})
        expected = (acct["charged_micros"], acct["fee_micros"], acct["reserve_micros"], acct["provider_micros"])
        if (row["c"], row["f"], row["r"], row["p"]) != expected:
            report.violate(f"lease {acct['lease_ref']}: settlements do not add up to the lease's charges")
        usage = rated.get(acct["lease_ref"], (0, 0, 0))
        if usage[0] != acct["claimed_gpu_ms"]:
            report.violate(f"lease {acct['lease_ref']}: rated usage records ≠ claimed GPU-ms")
        if usage[1] < acct["rated_storage_gb_ms"] or usage[2] < acct["rated_egress_bytes"]:
            report.violate(f"lease {acct['lease_ref']}: billed storage GB-ms / egress bytes beyond the rated records")


def _verify_metering(report: LedgerReport) -> None:
    """THE RULE (services/metering.py): no lease billed beyond its observed time, no job beyond its hold."""
    holds: dict[int, int] = {}
    job_charged: dict[int, int] = defaultdict(int)
    unbilled_ms = 0
    for acct in LeaseAccount.objects.values(
        "lease_ref",
        "job_ref",
        "hold_micros",
        "price_micros",
        "gpu_count",
        "active_from",
        "seen_until",
        "period_end",
        "claimed_gpu_ms",
        "rated_gpu_ms",
        "charged_micros",
        "charged_storage_micros",
        "charged_egress_micros",
    ):
        _check_broker_clock(report=report, acct=acct)
        holds[acct["job_ref"]] = max(holds.get(acct["job_ref"], 0), acct["hold_micros"])
        job_charged[acct["job_ref"]] += acct["charged_micros"]
        unbilled_ms += max(0, acct["claimed_gpu_ms"] - acct["rated_gpu_ms"])
    for job_ref, charged in job_charged.items():
        if charged > holds[job_ref]:
            report.violate(f"job {job_ref}: its leases were charged {charged}, beyond its escrow hold {holds[job_ref]}")
    report.checks.append(
        f"{len(holds)} jobs' leases charged within their job's hold and the broker-observed time; "
        f"{unbilled_ms / 1000:.3f} claimed GPU-s beyond the observed time were not charged"
    )
    capped = UsageAnomaly.objects.filter(kind=UsageAnomalyKind.OVER_HOLD).aggregate(
        n=Count("pk"), claimed=Coalesce(Sum("claimed_micros"), 0), charged=Coalesce(Sum("charged_micros"), 0)
    )
    report.checks.append(
        f"{capped['n']} usage anomalies capped at the job's hold: {capped['claimed'] - capped['charged']} micro-USD "
        f"not charged (kept in the customers' escrow or returned to their wallets); "
        f"{UsageAnomaly.objects.filter(kind=UsageAnomalyKind.REFUSED_REPORT).count()} usage reports refused"
    )


def _verify_settlement_legs(report: LedgerReport) -> None:
    """Each settlement's ledger transaction moves exactly its charge, fee and reserve."""
    report.settlements = Settlement.objects.count()
    legs = (
        Entry.objects.filter(transaction__settlement__isnull=False)
        .values_list("transaction__settlement__id", "account__kind")
        .annotate(s=Sum("amount"))
    )
    by_settlement: dict[int, dict[str, int]] = {}
    for sid, kind, total in legs:
        by_settlement.setdefault(sid, {})[kind] = total
    for s in Settlement.objects.exclude(ledger_transaction=None).values(
        "pk", "lease_account__lease_ref", "charged_micros", "fee_micros", "reserve_micros"
    ):
        moved = by_settlement.get(s["pk"], {})
        if (
            moved.get(AccountKind.CUSTOMER_ESCROW, 0) != -s["charged_micros"]
            or moved.get(AccountKind.PLATFORM_REVENUE, 0) != s["fee_micros"]
            or moved.get(AccountKind.RESERVE_FUND, 0) != s["reserve_micros"]
        ):
            report.violate(f"settlement {s['pk']} of lease {s['lease_account__lease_ref']}: ledger legs differ")
    for sid in Settlement.objects.filter(ledger_transaction=None, charged_micros__gt=0).values_list("pk", flat=True):
        report.violate(f"settlement {sid} charged money without a ledger transaction")
    report.checks.append(
        f"{report.lease_accounts} leases: charges = fee + reserve + provider share; "
        f"{report.settlements} settlements match their ledger transactions"
    )


def _verify_usage(report: LedgerReport) -> None:
    """Usage: recorded once (the unique key), nothing rated twice."""
    report.usage_records = UsageRecord.objects.count()
    pending = UsageRecord.objects.filter(status=UsageStatus.PENDING).count()
    report.checks.append(f"{report.usage_records} usage records ({pending} pending rating)")


def _verify_payouts(report: LedgerReport) -> None:
    """Payouts: sent ones debited payable; failed ones were returned."""
    report.payouts = Payout.objects.count()
    for p in Payout.objects.filter(
        Q(status__in=[PayoutStatus.IN_TRANSIT, PayoutStatus.PAID], ledger_transaction=None)
        | Q(status=PayoutStatus.FAILED, ledger_transaction__isnull=False, reversal_transaction=None)
    ).values_list("pk", flat=True)[:MAX_LISTED]:
        report.violate(f"payout {p}: status and ledger disagree")
    report.checks.append(f"{report.payouts} payouts agree with the ledger")


def _verify_registered(report: LedgerReport) -> None:
    """The checks apps above billing registered (financing: advances, fundings and repayments)."""
    for check in list(_extra_checks.values()):
        checks, violations = check()
        report.checks += checks
        for violation in violations:
            report.violate(violation)


def ledger_verify() -> LedgerReport:
    """Recompute every balance from entries and check the ledger's and billing's invariants."""
    report = LedgerReport()
    for verify in (
        _verify_transactions,
        _verify_balances,
        _verify_leases,
        _verify_usage,
        _verify_payouts,
        _verify_registered,
    ):
        verify(report)
    return report
