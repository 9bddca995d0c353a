"""Financing reads: underwriting inputs, what each party may see of advances, portfolio figures."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from billing.models import (
    OPEN_ADVANCE_STATUSES,
    Account,
    AccountKind,
    Advance,
    AdvanceApplication,
    AdvanceFunding,
    AdvanceRepayment,
    AdvanceStatus,
    LeaseAccount,
    LenderFundingMode,
    LenderPreference,
    ReservedContract,
    ReservedContractStatus,
    Settlement,
)
from marketplace.models import GPUModel, Node

TRAILING_DAYS = 90
RECENT_DAYS = 30
MARKET_DAYS = 30
MS_PER_DAY = 86_400_000


@dataclass
class EarningsHistory:
    trailing_micros: int  # provider share over the last TRAILING_DAYS
    recent_micros: int  # of which in the last RECENT_DAYS
    earlier_micros: int  # the TRAILING_DAYS - RECENT_DAYS before
    first_settlement_at: datetime | None


@dataclass
class MarketSnapshot:
    price_micros: int
    price_source: str
    listings: int
    listed_gpus: int
    used_gpu_ms: int
    capacity_gpu_ms: int


@dataclass
class ContractBacking:
    contract_id: int
    node_id: int
    monthly_micros: int
    remaining_months: int


@dataclass
class NodeStanding:
    node_id: int
    gpu_count: int
    reliability: float
    verified: bool


@dataclass
class UnderwritingInputs:
    history: EarningsHistory
    market: MarketSnapshot
    nodes: list[NodeStanding]
    contracts: list[ContractBacking] = field(default_factory=list)
    troubled_advances: int = 0
    open_advances_remaining_micros: int = 0


def provider_earnings_history(*, provider_user: User, now: datetime) -> EarningsHistory:
    """The provider's metered share (settlements of its leases) over the trailing window."""
    since = now - timedelta(days=TRAILING_DAYS)
    recent_since = now - timedelta(days=RECENT_DAYS)
    rows = Settlement.objects.filter(lease_account__provider=provider_user, created_at__gte=since, created_at__lte=now)
    trailing = rows.aggregate(s=Sum("provider_micros"))["s"] or 0
    recent = rows.filter(created_at__gte=recent_since).aggregate(s=Sum("provider_micros"))["s"] or 0
    first = (
        Settlement.objects.filter(lease_account__provider=provider_user, provider_micros__gt=0)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return EarningsHistory(
        trailing_micros=trailing, recent_micros=recent, earlier_micros=trailing - recent, first_settlement_at=first
    )


def gpu_model_market(*, gpu_model: GPUModel, now: datetime) -> MarketSnapshot:
    """Median listed price and the model's utilisation over MARKET_DAYS (rated GPU-ms / listed GPU-ms)."""
    from marketplace.selectors.pricing import gpu_model_prices

    price = gpu_model_prices(gpu_models=[gpu_model])[gpu_model.pk]
    listed_gpus = Node.objects.filter(gpu_model=gpu_model, listed=True).aggregate(s=Sum("gpu_count"))["s"] or 0
    used = (
        Settlement.objects.filter(
            lease_account__gpu_model_name=gpu_model.name, created_at__gte=now - timedelta(days=MARKET_DAYS)
        ).aggregate(s=Sum("gpu_ms"))["s"]
        or 0
    )
    return MarketSnapshot(
        price_micros=price.micros_per_gpu_hour,
        price_source=price.source,
        listings=price.listings,
        listed_gpus=listed_gpus,
        used_gpu_ms=used,
        capacity_gpu_ms=listed_gpus * MARKET_DAYS * MS_PER_DAY,
    )


def provider_contract_backing(*, provider_user: User, now: datetime) -> list[ContractBacking]:
    """Active reserved contracts on the provider's nodes with their unpaid months (the receivable)."""
    out = []
    for c in ReservedContract.objects.filter(provider=provider_user, status=ReservedContractStatus.ACTIVE).order_by(
        "pk"
    ):
        remaining = c.term_months - c.months_paid
        if remaining > 0:
            out.append(
                ContractBacking(
                    contract_id=c.pk, node_id=c.node_id, monthly_micros=c.monthly_micros, remaining_months=remaining
                )
            )
    return out


def underwriting_inputs(
    *, provider_user: User, gpu_model: GPUModel, node: Node | None, now: datetime | None = None
) -> UnderwritingInputs:
    now = now or timezone.now()
    nodes_qs = Node.objects.filter(provider__user=provider_user)
    if node is not None:
        nodes_qs = nodes_qs.filter(pk=node.pk)
    nodes = [
        NodeStanding(node_id=pk, gpu_count=n, reliability=float(r), verified=bool(v))
        for pk, n, r, v in nodes_qs.order_by("pk").values_list("pk", "gpu_count", "reliability", "verified")
    ]
    open_adv = Advance.objects.filter(
        provider=provider_user, status__in=[*OPEN_ADVANCE_STATUSES, AdvanceStatus.FUNDING]
    )
    remaining = sum(a.remaining_micros for a in open_adv)
    troubled = Advance.objects.filter(
        provider=provider_user, status__in=[AdvanceStatus.DELINQUENT, AdvanceStatus.DEFAULTED]
    ).count()
    return UnderwritingInputs(
        history=provider_earnings_history(provider_user=provider_user, now=now),
        market=gpu_model_market(gpu_model=gpu_model, now=now),
        nodes=nodes,
        contracts=provider_contract_backing(provider_user=provider_user, now=now),
        troubled_advances=troubled,
        open_advances_remaining_micros=remaining,
    )


# --- Visibility -----------------------------------------------------------------------------------------------------


def application_list(*, provider_user: User) -> QuerySet[AdvanceApplication]:
    return AdvanceApplication.objects.filter(provider=provider_user).select_related("gpu_model", "node")


def application_get(*, provider_user: User, application_id: int) -> AdvanceApplication | None:
    return application_list(provider_user=provider_user).filter(pk=application_id).first()


def advance_list_for_provider(*, provider_user: User) -> QuerySet[Advance]:
    return Advance.objects.filter(provider=provider_user).select_related("gpu_model", "application")


def lender_preference_get(*, lender_user: User) -> LenderPreference:
    pref = LenderPreference.objects.filter(lender=lender_user).first()
    return pref or LenderPreference(lender=lender_user)


def advances_offered_to_lender(*, lender_user: User) -> QuerySet[Advance]:
    """Advances open for funding that match the lender's preferences (tier, size cap, payoff time)."""
    pref = lender_preference_get(lender_user=lender_user)
    qs = Advance.objects.filter(status=AdvanceStatus.FUNDING).select_related("gpu_model", "application")
    if pref.tiers:
        qs = qs.filter(gpu_model__tier__in=pref.tiers)
    if pref.max_payoff_months:
        qs = qs.filter(expected_payoff_months__lte=pref.max_payoff_months)
    return qs.exclude(fundings__lender=lender_user).order_by("approved_at", "pk")


def advances_funded_by_lender(*, lender_user: User) -> QuerySet[Advance]:
    return (
        Advance.objects.filter(fundings__lender=lender_user)
        .select_related("gpu_model", "application")
        .distinct()
        .order_by("-approved_at", "-pk")
    )


def advance_visible_to(*, user: User, advance_id: int) -> Advance | None:
    """The advance if `user` may see it: staff, its provider, a funder, or a lender it is offered to."""
    qs = Advance.objects.select_related("gpu_model", "application", "provider")
    if user.is_staff:
        return qs.filter(pk=advance_id).first()
    adv = qs.filter(pk=advance_id).filter(Q(provider=user) | Q(fundings__lender=user)).first()
    if adv is not None:
        return adv
    if hasattr(user, "lender"):
        return advances_offered_to_lender(lender_user=user).filter(pk=advance_id).first()
    return None


def lender_balances(*, lender_user: User) -> dict[str, int]:
    cap = Account.objects.filter(kind=AccountKind.LENDER_CAPITAL, owner=lender_user).values_list("balance", flat=True)
    rec = Account.objects.filter(kind=AccountKind.LENDER_RECEIVABLE, owner=lender_user).values_list(
        "balance", flat=True
    )
    pledged = (
        AdvanceFunding.objects.filter(lender=lender_user, advance__status=AdvanceStatus.FUNDING).aggregate(
            s=Sum("amount_micros")
        )["s"]
        or 0
    )
    capital = sum(cap)
    return {"capital": capital, "pledged": pledged, "available": capital - pledged, "received": sum(rec)}


def lender_portfolio(*, lender_user: User) -> dict[str, Any]:
    """Funded, repaid, outstanding, written off, realised return, and the expected vs actual repayment curves."""
    fundings = list(
        AdvanceFunding.objects.filter(lender=lender_user)
        .select_related("advance", "advance__gpu_model")
        .order_by("advance__approved_at", "pk")
    )
    funded = repaid = outstanding = written_off = 0
    expected_curve: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for f in fundings:
        adv = f.advance
        if adv.status == AdvanceStatus.FUNDING:
            continue
        share_due = adv.due_micros * f.amount_micros // adv.principal_micros
        funded += f.amount_micros
        repaid += f.received_micros
        lost = 0
        if adv.status == AdvanceStatus.DEFAULTED:
            lost = max(0, share_due - f.received_micros)
            written_off += lost
        elif adv.status != AdvanceStatus.REPAID:
            outstanding += max(0, share_due - f.received_micros)
        rows.append({"funding": f, "advance": adv, "share_due": share_due, "lost": lost})
        if adv.disbursed_at is not None:
            months = max(1, int(adv.expected_payoff_months.to_integral_value(rounding="ROUND_CEILING")))
            for m in range(1, 25):
                expected_curve[m] = expected_curve.get(m, 0) + min(share_due, share_due * m // months)
    actual_curve: dict[int, int] = {}
    reps = AdvanceRepayment.objects.filter(funding__lender=lender_user).select_related("advance")
    for r in reps:
        if r.advance.disbursed_at is None or r.created_at is None:
            continue
        month = max(1, -(-(r.created_at - r.advance.disbursed_at).days // 30))
        actual_curve[month] = actual_curve.get(month, 0) + r.amount_micros
    cumulative, actual = 0, {}
    for m in range(1, 25):
        cumulative += actual_curve.get(m, 0)
        actual[m] = cumulative
    settled_principal = sum(
        r["funding"].amount_micros
        for r in rows
        if r["advance"].status in (AdvanceStatus.REPAID, AdvanceStatus.DEFAULTED)
    )
    settled_received = sum(
        r["funding"].received_micros
        for r in rows
        if r["advance"].status in (AdvanceStatus.REPAID, AdvanceStatus.DEFAULTED)
    )
    return {
        "rows": rows,
        "funded": funded,
        "repaid": repaid,
        "outstanding": outstanding,
        "written_off": written_off,
        "delinquent": sum(1 for r in rows if r["advance"].status == AdvanceStatus.DELINQUENT),
        "defaulted": sum(1 for r in rows if r["advance"].status == AdvanceStatus.DEFAULTED),
        # Realised return on closed (repaid or defaulted) advances: (received - principal) / principal.
        "realised_gain": settled_received - settled_principal,
        "realised_principal": settled_principal,
        "expected_curve": [expected_curve.get(m, 0) for m in range(1, 25)],
        "actual_curve": [actual[m] for m in range(1, 25)],
    }


def lease_accounts_of_model_exist(*, gpu_model: GPUModel) -> bool:
    return LeaseAccount.objects.filter(gpu_model_name=gpu_model.name).exists()


def funding_mode_auto_lenders() -> QuerySet[LenderPreference]:
    return LenderPreference.objects.filter(mode=LenderFundingMode.AUTO).order_by("lender_id")


def advance_projection(*, advance: Advance, now: datetime | None = None) -> datetime | None:
    """Projected payoff date: at the pace repaid so far (after 30 days of history), else the offer's expectation."""
    if advance.disbursed_at is None or advance.status not in OPEN_ADVANCE_STATUSES:
        return advance.closed_at
    now = now or timezone.now()
    elapsed = (now - advance.disbursed_at).total_seconds()
    if elapsed >= 30 * 86_400 and advance.repaid_micros > 0:
        seconds_left = advance.remaining_micros * elapsed / advance.repaid_micros
        return now + timedelta(seconds=seconds_left)
    return advance.disbursed_at + timedelta(days=float(advance.expected_payoff_months) * 30)


def advances_all(*, status: str | None = None) -> QuerySet[Advance]:
    qs = Advance.objects.select_related("gpu_model", "provider", "application").order_by("-approved_at", "-pk")
    return qs.filter(status=status) if status else qs


def applications_pending() -> QuerySet[AdvanceApplication]:
    return (
        AdvanceApplication.objects.filter(status="offered")
        .select_related("gpu_model", "provider")
        .order_by("created_at", "pk")
    )


def financing_verify() -> tuple[list[str], list[str]]:
    """Financing invariants against the ledger: (checks run, violations). Called by ledger_verify.

    * every disbursed advance has its disbursement transaction moving exactly the principal out of the funders'
      capital, and its fundings add up to the principal;
    * each advance's repaid amount = its repayment records = what its funders received;
    * every repayment record's source transaction exists and credits lender receivables; in total, lender
      receivable credits = repayment records (what lenders received is exactly what was withheld or paid off);
    * repaid + written off never exceeds principal + fee; a repaid advance has nothing remaining.
    """
    from billing.models import Entry, LedgerTransaction

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
        Entry.objects.filter(account__kind=AccountKind.LENDER_RECEIVABLE, amount__gt=0).aggregate(s=Sum("amount"))["s"]
        or 0
    )
    recorded = AdvanceRepayment.objects.aggregate(s=Sum("amount_micros"))["s"] or 0
    if credits != recorded:
        violations.append(f"lender receivables were credited {credits} but repayments record {recorded}")
    checks = [
        f"{len(advances)} advances: fundings = principal = disbursed capital; repaid = repayments = funders' receipts; "
        f"lender receivable credits ({credits}) = recorded repayments"
    ]
    return checks, violations
