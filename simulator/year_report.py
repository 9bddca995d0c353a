"""The financing year's report: per lender and overall, from the database the run left (amounts in micro-dollars).

Definitions (the README's "A stressed year" shows the figures):
  * deployed: principal the lender funded in advances that were disbursed;
  * repaid: what the lender received (withholding, contract payments, early payoffs and recalls);
  * outstanding: the lender's share of what open (active or delinquent) advances still owe;
  * written off: the lender's share of what defaulted advances did not repay;
  * realised annualised return: (realised income) / (capital-years deployed), where realised income is what the
    lender received beyond principal on closed advances (repaid or defaulted: a loss when negative), plus the fee part
    of what it received on open ones (received × fee / due), and capital-years are each funding's amount × the years
    from disbursement to the advance's close (or the end of the run);
  * default rate: defaulted advances / disbursed advances;
  * loss given default: principal not recovered on defaulted advances (principal − received, at least 0) / their
    principal;
  * declined for related-party earnings: applications declined with reason D7;
  * fraud funded: advances of the ring's provider that were disbursed (must be 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User

from billing.selectors.ledger import ledger_verify
from common.money import format_usd
from financing.models import OPEN_ADVANCE_STATUSES, Advance, AdvanceApplication, AdvanceFunding, AdvanceStatus

YEAR_S = 365 * 86400


@dataclass
class Book:
    deployed: int = 0
    repaid: int = 0
    outstanding: int = 0
    written_off: int = 0
    income: int = 0
    capital_s: float = 0.0

    @property
    def return_pct(self) -> Decimal:
        if not self.capital_s:
            return Decimal(0)
        return (Decimal(self.income) / Decimal(self.capital_s / YEAR_S) * 100).quantize(Decimal("0.01"))


@dataclass
class YearReport:
    lenders: dict[str, Book] = field(default_factory=dict)
    overall: Book = field(default_factory=Book)
    advances: int = 0
    market_backed: int = 0
    contract_backed: int = 0
    repaid_advances: int = 0
    defaulted: int = 0
    defaulted_contract: int = 0
    delinquent: int = 0
    defaulted_principal: int = 0
    principal_lost: int = 0
    declined_related: int = 0
    declined_other: int = 0
    fraud_funded: int = 0
    ledger_ok: bool = False
    ledger_violations: list[str] = field(default_factory=list)

    @property
    def default_rate_pct(self) -> Decimal:
        return (
            Decimal(0)
            if not self.advances
            else (Decimal(self.defaulted * 100) / self.advances).quantize(Decimal("0.1"))
        )

    @property
    def lgd_pct(self) -> Decimal:
        if not self.defaulted_principal:
            return Decimal(0)
        return (Decimal(self.principal_lost * 100) / self.defaulted_principal).quantize(Decimal("0.1"))


def _add(book: Book, f: AdvanceFunding, adv: Advance, now: datetime) -> None:
    share_due = adv.due_micros * f.amount_micros // adv.principal_micros
    book.deployed += f.amount_micros
    book.repaid += f.received_micros
    if adv.status in OPEN_ADVANCE_STATUSES:
        book.outstanding += max(0, share_due - f.received_micros)
        book.income += f.received_micros * adv.fee_micros // adv.due_micros
    else:
        if adv.status == AdvanceStatus.DEFAULTED:
            book.written_off += max(0, share_due - f.received_micros)
        book.income += f.received_micros - f.amount_micros
    assert adv.disbursed_at is not None
    end = adv.closed_at or now
    book.capital_s += f.amount_micros * max(0.0, (end - adv.disbursed_at).total_seconds())


def year_report_build(*, now: datetime, ring_user: User | None) -> YearReport:
    r = YearReport()
    disbursed = Advance.objects.filter(disbursed_at__isnull=False).select_related("application")
    for adv in disbursed.order_by("pk"):
        r.advances += 1
        if adv.application.demand_id:
            r.contract_backed += 1
        else:
            r.market_backed += 1
        r.repaid_advances += adv.status == AdvanceStatus.REPAID
        r.delinquent += adv.status == AdvanceStatus.DELINQUENT
        if adv.status == AdvanceStatus.DEFAULTED:
            r.defaulted += 1
            r.defaulted_contract += bool(adv.application.demand_id)
            r.defaulted_principal += adv.principal_micros
            r.principal_lost += max(0, adv.principal_micros - adv.repaid_micros)
        if ring_user is not None and adv.provider_id == ring_user.pk:
            r.fraud_funded += 1
    fundings = AdvanceFunding.objects.filter(advance__disbursed_at__isnull=False).select_related("advance", "lender")
    for f in fundings.order_by("lender__username", "pk"):
        _add(r.lenders.setdefault(f.lender.username, Book()), f, f.advance, now)
        _add(r.overall, f, f.advance, now)
    for reasons in AdvanceApplication.objects.filter(status="declined").values_list("decline_reasons", flat=True):
        if any(str(x).startswith("D7") for x in reasons):
            r.declined_related += 1
        else:
            r.declined_other += 1
    check = ledger_verify()
    r.ledger_ok, r.ledger_violations = check.ok, list(check.violations)[:10]
    return r


def _book_line(name: str, b: Book) -> str:
    return (
        f"  {name:<14} deployed {format_usd(micros=b.deployed):>14}  repaid {format_usd(micros=b.repaid):>13}  "
        f"outstanding {format_usd(micros=b.outstanding):>13}  written off {format_usd(micros=b.written_off):>12}  "
        f"realised return {b.return_pct}%/yr"
    )


def year_report_lines(
    *, report: YearReport, scenario: str, days: int, weeks: int, jobs: int, wall_s: float
) -> list[str]:
    r = report
    lines = [
        f"financing year: scenario {scenario}, {days} days in {weeks} weekly ticks, {jobs} jobs settled, "
        f"{wall_s:.1f} s",
        f"advances disbursed {r.advances} ({r.market_backed} market-backed, {r.contract_backed} contract-backed): "
        f"repaid {r.repaid_advances}, defaulted {r.defaulted} ({r.defaulted - r.defaulted_contract} market-backed, "
        f"{r.defaulted_contract} contract-backed), delinquent {r.delinquent}",
        f"default rate {r.default_rate_pct}%  loss given default {r.lgd_pct}% of principal "
        f"({format_usd(micros=r.principal_lost)} of {format_usd(micros=r.defaulted_principal)})",
        f"applications declined for related-party earnings (D7): {r.declined_related}; declined otherwise: "
        f"{r.declined_other}; ring advances funded: {r.fraud_funded}",
        "per lender:",
        *[_book_line(name, book) for name, book in sorted(r.lenders.items())],
        _book_line("overall", r.overall),
    ]
    if not r.ledger_ok:
        lines.append("ledger_check FAILED: " + "; ".join(r.ledger_violations))
    lines.append(
        f"advances={r.advances} repaid={r.repaid_advances} defaulted={r.defaulted} "
        f"lender_return_pct={r.overall.return_pct} fraud_funded={r.fraud_funded} ledger_ok={int(r.ledger_ok)}"
    )
    return lines
