"""Open contract demand and the inputs its underwriting reads (the customer's credit, the provider's standing)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from billing.models import AccountKind, Settlement
from billing.services.ledger import account_get
from financing.models import (
    Advance,
    AdvanceStatus,
    ContractDemand,
    ContractDemandStatus,
    ReservedContract,
    ReservedContractCharge,
    ReservedContractStatus,
)
from financing.selectors.parties import related_parties
from financing.selectors.underwriting import TRAILING_DAYS, provider_earnings_history
from financing.services.risk import RiskFlags, provider_risk_flags_for

CREDIT_DAYS = 180


@dataclass
class CustomerCredit:
    """What the broker knows of the customer behind a contract: what it paid, what it failed to, what it holds."""

    customer_id: int
    paid_micros: int  # settled usage charges and paid contract months over the last CREDIT_DAYS
    lapsed_contracts: int  # reserved contracts it stopped paying, ever
    wallet_micros: int  # prepaid balance


@dataclass
class ContractUnderwritingInputs:
    demand: ContractDemand
    credit: CustomerCredit
    unit_cost_micros: int
    provider_history_micros: int  # counted arm's-length earnings over the trailing 90 days
    verified_nodes: int
    troubled_advances: int
    open_withhold_bps: int
    related_reasons: list[str] = field(default_factory=list)  # why the customer is related to the provider
    flags: RiskFlags = field(default_factory=RiskFlags)


def customer_credit(*, customer_user: User, now: datetime) -> CustomerCredit:
    since = now - timedelta(days=CREDIT_DAYS)
    usage = (
        Settlement.objects.filter(lease_account__customer=customer_user, created_at__gte=since).aggregate(
            s=Sum("charged_micros")
        )["s"]
        or 0
    )
    months = (
        ReservedContractCharge.objects.filter(contract__customer=customer_user, created_at__gte=since).aggregate(
            s=Sum("amount_micros")
        )["s"]
        or 0
    )
    wallet = account_get(kind=AccountKind.CUSTOMER_WALLET, user=customer_user)
    wallet.refresh_from_db(fields=["balance"])
    return CustomerCredit(
        customer_id=customer_user.pk,
        paid_micros=usage + months,
        lapsed_contracts=ReservedContract.objects.filter(
            customer=customer_user, status=ReservedContractStatus.LAPSED
        ).count(),
        wallet_micros=wallet.balance,
    )


def contract_underwriting_inputs(
    *, provider_user: User, demand: ContractDemand, unit_cost_micros: int, now: datetime | None = None
) -> ContractUnderwritingInputs:
    now = now or timezone.now()
    open_adv = Advance.objects.filter(
        provider=provider_user,
        status__in=[AdvanceStatus.FUNDING, AdvanceStatus.ACTIVE, AdvanceStatus.DELINQUENT],
    )
    return ContractUnderwritingInputs(
        demand=demand,
        credit=customer_credit(customer_user=demand.customer, now=now),
        unit_cost_micros=unit_cost_micros,
        provider_history_micros=provider_earnings_history(provider_user=provider_user, now=now).trailing_micros,
        verified_nodes=provider_user.provider.nodes.filter(verified=True).count()
        if hasattr(provider_user, "provider")
        else 0,
        troubled_advances=Advance.objects.filter(
            provider=provider_user, status__in=[AdvanceStatus.DELINQUENT, AdvanceStatus.DEFAULTED]
        ).count(),
        open_withhold_bps=sum(open_adv.values_list("base_withhold_bps", flat=True)),
        related_reasons=related_parties(provider_user=provider_user, customer_ids=[demand.customer_id]).get(
            demand.customer_id, []
        ),
        flags=provider_risk_flags_for(provider_user=provider_user, since=now - timedelta(days=TRAILING_DAYS)),
    )


def demand_open() -> QuerySet[ContractDemand]:
    return ContractDemand.objects.filter(status=ContractDemandStatus.OPEN).select_related("gpu_model", "customer")


def demand_for_customer(*, customer_user: User) -> QuerySet[ContractDemand]:
    return ContractDemand.objects.filter(customer=customer_user).select_related("gpu_model", "contract")


def demand_visible_to_provider(*, provider_user: User) -> QuerySet[ContractDemand]:
    """Open demand, and the demand awarded to this provider."""
    return ContractDemand.objects.filter(
        Q(status=ContractDemandStatus.OPEN) | Q(awarded_to=provider_user)
    ).select_related("gpu_model", "contract")


def demand_awarded() -> QuerySet[ContractDemand]:
    """For staff: demand awarded to a provider, by delivery deadline (not yet disbursed last)."""
    return (
        ContractDemand.objects.filter(status=ContractDemandStatus.AWARDED)
        .select_related("gpu_model", "awarded_to", "customer")
        .order_by("deadline_at", "pk")
    )


def demand_advance(*, demand: ContractDemand) -> Advance | None:
    """The advance that financed an awarded demand (its approved application's advance)."""
    return (
        Advance.objects.filter(application__demand=demand)
        .exclude(application__status="rejected")
        .order_by("-pk")
        .first()
    )
